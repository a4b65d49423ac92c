-- attack: raises an error whose message is not UTF-8, so the exit's message and traceback would not be JSON
-- expect: error
error("\xff\xfe bad \xc0\xaf bytes \xed\xa0\x80")
