"""Everything read from outside svqcast: one opener for every format, one suffix table, one
coordinate vocabulary (lexicon), the time axis and calendars, and one view of forecast files."""
