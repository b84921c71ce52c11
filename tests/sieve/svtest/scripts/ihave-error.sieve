require "ihave";
error "no flux capacitor";
