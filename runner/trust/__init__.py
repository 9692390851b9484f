"""Reading what strangers hand back: files an image or a dataset left (safe_io), every record a container wrote (validate), and text edgeasr did not write, shown safely (untrusted)."""
