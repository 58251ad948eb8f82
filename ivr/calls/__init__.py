"""What a caller hears: prompt files, TwiML building, office hours spoken and counted, audio."""
