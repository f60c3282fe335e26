"""Delta tables under one lake root: the one writer (store), where the lake lives (storage),
and the read and MERGE planning helpers it uses."""
