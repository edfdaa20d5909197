"""What every app shares and none owns: the lowest floor, importing no other app."""
