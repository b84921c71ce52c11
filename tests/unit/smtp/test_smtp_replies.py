from postroom.smtp.replies import r


def test_single_and_multiline():
    assert r(250, "2.1.0", "Sender OK").encode() == b"250 2.1.0 Sender OK\r\n"
    assert r(250, None, "host Hello", "PIPELINING", "SIZE 10").encode() == (
        b"250-host Hello\r\n250-PIPELINING\r\n250 SIZE 10\r\n")
    assert r(250, "2.1.5", "<a@x>", "<b@x>").encode() == b"250-2.1.5 <a@x>\r\n250 2.1.5 <b@x>\r\n"
    assert r(354, None, "go").encode() == b"354 go\r\n"
