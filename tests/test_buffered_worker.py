"""Where a request ends: the framing the receiver's event loop uses before a thread sees the request.

The worker itself is exercised against real clients in tests/adversarial/test_adv_receiver_slow.py.
"""

import pytest

from retention_plugin.buffered_worker import (COMPLETE, HEAD_TOO_LARGE, INCOMPLETE, MAX_HEAD_BYTES, TOO_LARGE,
                                               RequestFrame)

HEAD = b"POST /webhooks/shopify HTTP/1.1\r\nHost: x\r\n"


def feed(data: bytes, step: int = 1, max_body: int = 1000) -> list[str]:
    """The state after each arrival of ``step`` bytes."""
    frame, buf, states = RequestFrame(max_body), bytearray(), []
    for i in range(0, len(data), step):
        buf += data[i:i + step]
        states.append(frame.state(buf))
    return states


def test_content_length_body_is_complete_only_when_all_of_it_arrived():
    request = HEAD + b"Content-Length: 5\r\n\r\nhello"
    states = feed(request)
    assert states[-1] == COMPLETE and set(states[:-1]) == {INCOMPLETE}


def test_a_request_without_body_is_complete_at_the_end_of_its_head():
    states = feed(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert states[-1] == COMPLETE and set(states[:-1]) == {INCOMPLETE}


def test_chunked_body_with_extensions_and_trailers():
    body = b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: 1\r\n\r\n"
    states = feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + body)
    assert states[-1] == COMPLETE and set(states[:-1]) == {INCOMPLETE}
    states = feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", step=7)
    assert states[-1] == COMPLETE and set(states[:-1]) == {INCOMPLETE}


def test_a_million_one_byte_chunks_are_framed_in_one_pass():
    frame = RequestFrame(max_body=10**7)
    buf = bytearray(HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    assert frame.state(buf) == INCOMPLETE
    for _ in range(20):
        buf += b"1\r\nx\r\n" * 50_000
        assert frame.state(buf) == INCOMPLETE
    assert frame.chunk_data == 1_000_000  # resumed from where it stopped each time
    buf += b"0\r\n\r\n"
    assert frame.state(buf) == COMPLETE


@pytest.mark.parametrize("head", [
    b"Content-Length: abc\r\n",                                   # not a number
    b"Content-Length: 5\r\nContent-Length: 6\r\n",                # twice
    b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",       # both: request smuggling territory
    b"Transfer-Encoding: gzip\r\n",                               # not chunked last
    b"NoColonHere\r\n",
])
def test_what_cannot_be_framed_goes_to_the_parser_at_once(head):
    # gunicorn's parser gets these bytes next and answers 400; waiting would only hold the socket.
    assert feed(HEAD + head + b"\r\n")[-1] == COMPLETE


def test_a_bad_chunk_size_goes_to_the_parser():
    assert feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n")[-1] == COMPLETE


def test_a_body_over_the_limit_is_known_before_it_arrives():
    assert RequestFrame(100).state(HEAD + b"Content-Length: 101\r\n\r\n") == TOO_LARGE
    assert RequestFrame(100).state(HEAD + b"Content-Length: 100\r\n\r\n") == INCOMPLETE
    frame = RequestFrame(100)
    buf = bytearray(HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"32\r\n" + b"x" * 50 + b"\r\n")
    assert frame.state(buf) == INCOMPLETE
    buf += b"33\r\n"  # 50 + 51 > 100, declared before a byte of it arrived
    assert frame.state(buf) == TOO_LARGE


def test_an_endless_head_is_refused():
    buf = HEAD + b"X-Pad: " + b"a" * MAX_HEAD_BYTES
    assert RequestFrame(100).state(buf) == HEAD_TOO_LARGE


def test_expect_continue_is_noticed_and_leading_empty_lines_are_skipped():
    frame = RequestFrame(100)
    assert frame.state(b"\r\n\r\n" + HEAD + b"Expect: 100-continue\r\nContent-Length: 3\r\n\r\n") == INCOMPLETE
    assert frame.expect_continue
