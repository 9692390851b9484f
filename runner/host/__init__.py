"""Facts about the host: its platform, its hardware and software, how busy it is, and folder locks."""
