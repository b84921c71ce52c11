require "editheader";
addheader "X Bad: Name" "v";
