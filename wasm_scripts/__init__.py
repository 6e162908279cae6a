"""Guest side of labd scripting: the ABI v1 SDKs and example experiments."""
