"""What each artifact kind holds, read back: the downstream stages' view of an upstream
stage's output (the stage that writes a kind imports its file names from here too), so that no
stage imports another."""
