"""NNTP: the reader and posting protocol (RFC 3977), over the News API of postroom.news."""
