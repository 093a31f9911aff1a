"""Models: SimVP backbone, the 13 translators, and the quantizer family. No file I/O here."""
