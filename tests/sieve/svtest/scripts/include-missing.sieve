require "include";
include "include-nothing-here";
