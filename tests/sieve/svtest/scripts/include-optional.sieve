require "include";
include :optional "include-nothing-here";
keep;
