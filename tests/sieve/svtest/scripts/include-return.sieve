require "include";
include "include-returns";
discard;
