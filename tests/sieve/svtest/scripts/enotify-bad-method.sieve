require "enotify";
notify "xmpp:someone@example.org";
