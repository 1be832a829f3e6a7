"""The signed apt repository: its settings and history, publishing, signing, serving it to nodes."""
