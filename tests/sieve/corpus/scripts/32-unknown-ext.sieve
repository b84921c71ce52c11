require "vnd.example.unknown";
keep;
