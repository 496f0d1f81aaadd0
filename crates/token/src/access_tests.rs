// Access token tests: see the next commit.
