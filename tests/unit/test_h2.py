"""The HTTP/2 slice for unary gRPC (oip/h2.py): frames, HPACK literals, message framing."""

from __future__ import annotations

import hpack
import pytest

from oip import h2


def test_frames_survive_any_split_of_the_byte_stream() -> None:
    stream = (h2.frame(h2.HEADERS, h2.END_HEADERS, 1, b"abc")
              + h2.frame(h2.DATA, h2.END_STREAM, 1, b"x" * 300)
              + h2.frame(h2.PING, 0, 0, b"12345678"))
    for cut in (1, 5, 9, 10, 200, len(stream) - 1):
        reader = h2.FrameReader()
        frames = list(reader.feed(stream[:cut])) + list(reader.feed(stream[cut:]))
        assert [(f.kind, f.flags, f.stream_id, len(f.payload)) for f in frames] == [
            (h2.HEADERS, h2.END_HEADERS, 1, 3), (h2.DATA, h2.END_STREAM, 1, 300), (h2.PING, 0, 0, 8)]


def test_padding_and_priority_are_stripped() -> None:
    padded = h2.Frame(h2.DATA, h2.PADDED, 1, bytes([3]) + b"body" + b"\0\0\0")
    assert padded.body() == b"body"
    prioritised = h2.Frame(h2.HEADERS, h2.PRIORITY_FLAG | h2.END_HEADERS, 1, b"\0\0\0\0\x10" + b"block")
    assert prioritised.body() == b"block"
    with pytest.raises(h2.ProtocolError, match="padding"):
        h2.Frame(h2.DATA, h2.PADDED, 1, bytes([9]) + b"ab").body()


def test_oversized_frames_are_refused() -> None:
    with pytest.raises(h2.ProtocolError, match="larger than allowed"):
        list(h2.FrameReader(max_frame=100).feed(h2.frame(h2.DATA, 0, 1, b"x" * 101)))


def test_data_frames_respect_the_frame_size_and_end_the_stream_once() -> None:
    frames = list(h2.FrameReader().feed(h2.data_frames(3, b"y" * 40_000, 16_384, end_stream=True)))
    assert [len(f.payload) for f in frames] == [16_384, 16_384, 7_232]
    assert [f.flags & h2.END_STREAM for f in frames] == [0, 0, h2.END_STREAM]


def test_header_blocks_decode_with_a_standard_hpack_decoder() -> None:
    decoder = hpack.Decoder()
    long_path = "/inference.GRPCInferenceService/" + "M" * 200  # lengths past the 7-bit prefix
    fields = dict(decoder.decode(h2.request_headers(long_path, "127.0.0.1:9", timeout_s=2.5), raw=False))
    assert fields == {":method": "POST", ":scheme": "http", ":path": long_path, ":authority": "127.0.0.1:9",
                      "content-type": "application/grpc", "te": "trailers", "user-agent": "oip-harness",
                      "grpc-timeout": "2500m"}
    # literals leave the dynamic table alone, so the same bytes decode the same way again
    assert dict(decoder.decode(h2.request_headers(long_path, "127.0.0.1:9"), raw=False))[":path"] == long_path
    answer = dict(decoder.decode(h2.RESPONSE_HEADERS + h2.trailers(5, "Model x/ü not found\n"), raw=False))
    assert answer[":status"] == "200" and answer["grpc-status"] == "5"
    assert h2.grpc_message_text(answer["grpc-message"]) == "Model x/ü not found\n"


def test_messages_are_length_prefixed() -> None:
    assert h2.unwrap_message(h2.message(b"payload")) == b"payload"
    with pytest.raises(h2.ProtocolError, match="5-byte prefix"):
        h2.unwrap_message(b"\0\0")
    with pytest.raises(h2.ProtocolError, match="compressed"):
        h2.unwrap_message(b"\1" + h2.message(b"p")[1:])
    with pytest.raises(h2.ProtocolError, match="says 7 bytes"):
        h2.unwrap_message(h2.message(b"payload")[:-1])


def test_settings_round_trip() -> None:
    frame = next(h2.FrameReader().feed(h2.settings({h2.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20})))
    assert h2.parse_settings(frame.payload) == {h2.SETTINGS_INITIAL_WINDOW_SIZE: 1 << 20}
    with pytest.raises(h2.ProtocolError):
        h2.parse_settings(b"\0\0\0")


def test_rst_stream_codes_map_to_grpc_statuses_as_grpc_does() -> None:
    # gRPC's PROTOCOL-HTTP2.md "Errors"; NO_ERROR here means before the trailers
    assert {h2.error_name(code): h2.STATUS_NAMES[h2.reset_status(code)] for code in range(14)} == {
        "NO_ERROR": "INTERNAL", "PROTOCOL_ERROR": "INTERNAL", "INTERNAL_ERROR": "INTERNAL",
        "FLOW_CONTROL_ERROR": "INTERNAL", "SETTINGS_TIMEOUT": "INTERNAL", "STREAM_CLOSED": "INTERNAL",
        "FRAME_SIZE_ERROR": "INTERNAL", "REFUSED_STREAM": "UNAVAILABLE", "CANCEL": "CANCELLED",
        "COMPRESSION_ERROR": "INTERNAL", "CONNECT_ERROR": "INTERNAL",
        "ENHANCE_YOUR_CALM": "RESOURCE_EXHAUSTED", "INADEQUATE_SECURITY": "PERMISSION_DENIED",
        "HTTP_1_1_REQUIRED": "INTERNAL"}
    assert h2.reset_status(0x99) == h2.GRPC_INTERNAL and h2.error_name(0x99) == "0x99"


def test_the_receive_window_is_handed_back_when_half_used() -> None:
    window = h2.ReceiveWindow()
    assert window.consumed(h2.MAX_WINDOW // 2) == b""
    update = window.consumed(10)
    frame = next(h2.FrameReader().feed(update))
    assert (frame.kind, frame.stream_id, int.from_bytes(frame.payload, "big")) == (
        h2.WINDOW_UPDATE, 0, h2.MAX_WINDOW // 2 + 10)
    assert window.consumed(10) == b""  # counting starts again
