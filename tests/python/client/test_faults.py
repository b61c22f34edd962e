"""Bad input from the network and from the caller.

A fake node (tests/python/golden/fakenode.py, a socket server thread in
this process) answers the tend normally and data commands with broken
frames: closed mid-reply, truncated, oversized, wrong proto type or
version, garbage, silence.  The client must raise ProtocolError /
ConnectionError / TimeoutError within the configured timeouts (never hang,
never crash), discard the connection, retry per policy, and report
``in_doubt`` for writes that may have been applied.  Then: unreachable
seeds, bad Python arguments, and the embedded server's own fault injection.

Fake-node tests run with CSPIKE_TEST_HOSTS too (marker fake_server); the
embedded-server ones skip there.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time

import pytest

import capwire as W
from chelpers import behavior
from fakenode import Close, Delay, FakeNode, Hang, Partial, Reply, Then, default_info

pytestmark = [pytest.mark.timeout(60)]
fake = pytest.mark.fake_server

GET_OK = W.Msg(generation=3, ops=[W.Op(W.OP_READ, W.P_INTEGER, b"a", (5).to_bytes(8, "big"))]).encode()
PUT_OK = W.Msg(generation=1).encode()


def msg(rc=0, **kw) -> bytes:
    return W.Msg(result_code=rc, **kw).encode()


@pytest.fixture
def node():
    n = FakeNode(default_info("F1"))
    yield n
    n.stop()


@pytest.fixture
def fclient(node):
    from cspike import SyncClient
    c = SyncClient(node.seed, tend_interval=0.05, connect_timeout=1.0)
    c.connect()
    yield c
    c.close()


def sess(client, **settings):
    base = dict(total_timeout=2.0, socket_timeout=1.0, max_retries=0, send_key=False)
    base.update(settings)
    return client.create_session(behavior(**base))


def fkey(v="k"):
    from cspike import Key
    return Key("test", "faults", v)


def timed(fn, limit: float = 10.0):
    """Run fn on a helper thread; (result or exception, seconds).  A call
    still running after `limit` seconds fails the test as a hang (the C
    code may not return to Python, so pytest-timeout could not stop it)."""
    out = []

    def run():
        t0 = time.monotonic()
        try:
            r = fn()
        except BaseException as e:  # noqa: BLE001 - returned to the caller
            r = e
        out.append((r, time.monotonic() - t0))

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(limit)
    if t.is_alive():
        pytest.fail(f"the call hung: still running after {limit} s")
    return out[0]


# --------------------------------------------------------------------------- broken replies

@fake
def test_good_replies_reuse_one_connection(node, fclient):
    s = sess(fclient)
    node.push(GET_OK, PUT_OK, GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    assert s.put(fkey(), {"a": 5}) is None
    assert s.get(fkey()).generation == 3
    assert node.accepted == 2  # the tend connection + one pooled command connection


@fake
@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_closed_mid_reply(node, fclient, write):
    from cspike import ConnectionError
    s = sess(fclient)
    node.push(Partial(GET_OK if not write else PUT_OK, 10))
    e, dt = timed(lambda: s.put(fkey(), {"a": 1}) if write else s.get(fkey()))
    assert isinstance(e, ConnectionError), repr(e)
    assert e.in_doubt is write  # the request went out: a write may have happened
    assert dt < 1.0
    # The broken connection is discarded: the next command opens a new one.
    before = node.accepted
    node.push(GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    assert node.accepted == before + 1


@fake
@pytest.mark.parametrize("how", ["fin", "rst"])
def test_pooled_connection_closed_by_server_is_not_used(node, fclient, how):
    """A server may close an idle pooled connection (idle reaping, restart).
    The client must notice on checkout (the C client peeks for EOF/unread
    bytes) instead of sending a non-retryable write into it: that write
    would fail and be reported in doubt although nothing was wrong."""
    s = sess(fclient, max_retries=0)
    node.push(GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    if how == "fin":
        node.drop_connections_gracefully()
    else:
        node.drop_connections()
    time.sleep(0.1)
    node.push(PUT_OK)
    r, _dt = timed(lambda: s.put(fkey(), {"a": 1}))
    assert r is None, repr(r)


@fake
def test_closed_without_reply_is_retried(node, fclient):
    s = sess(fclient, max_retries=2)
    node.push(Close(), Close(), GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    assert len(node.requests) == 3


@fake
def test_retries_are_bounded_by_policy(node, fclient):
    from cspike import ConnectionError
    s = sess(fclient, max_retries=1)
    node.push(Close(), Close(), GET_OK)
    with pytest.raises(ConnectionError):
        s.get(fkey())
    assert len(node.requests) == 2  # 1 try + 1 retry
    node.reset()


@fake
def test_truncated_frame_then_silence_times_out(node, fclient):
    """Half a frame, then nothing: socket timeout, not a hang."""
    from cspike import TimeoutError
    s = sess(fclient, socket_timeout=0.3, total_timeout=5.0)
    node.push(Then(GET_OK[:20], Hang()))
    e, dt = timed(lambda: s.get(fkey()))
    assert isinstance(e, TimeoutError), repr(e)
    assert e.in_doubt is False
    assert 0.25 <= dt < 1.5


@fake
def test_truncated_frame_then_close(node, fclient):
    from cspike import ConnectionError
    s = sess(fclient)
    node.push(Partial(GET_OK, 8 + 5))
    with pytest.raises(ConnectionError):
        s.get(fkey())


@fake
def test_total_timeout_bounds_a_silent_server(node, fclient):
    from cspike import TimeoutError
    s = sess(fclient, socket_timeout=0, total_timeout=0.3, max_retries=5)
    node.default = Hang()
    e, dt = timed(lambda: s.get(fkey()))
    assert isinstance(e, TimeoutError), repr(e)
    assert 0.25 <= dt < 1.2


@fake
def test_socket_timeout_retries_then_total_timeout(node, fclient):
    """socket 0.2 s, total 0.7 s, many retries: attempts until the total
    deadline, then TimeoutError; a write is in doubt."""
    from cspike import TimeoutError
    s = sess(fclient, socket_timeout=0.2, total_timeout=0.7, max_retries=10)
    node.default = Hang()
    e, dt = timed(lambda: s.put(fkey(), {"a": 1}))
    assert isinstance(e, TimeoutError), repr(e)
    assert e.in_doubt is True
    assert 0.6 <= dt < 1.5
    assert 3 <= len(node.requests) <= 5


@fake
@pytest.mark.parametrize("piece", [1, 8, 9, 10, 22])
@pytest.mark.parametrize("write", [False, True], ids=["read", "write"])
def test_reply_arriving_in_pieces(node, fclient, piece, write):
    """TCP may deliver a reply in any split.  The first `piece` bytes come
    alone, the rest 50 ms later: the client must reassemble them.  (A
    9-byte first read used to be taken for a timeout: SPK_ERR_TIMEOUT is
    9, and spk_sock_recv returns it where it returns byte counts.)"""
    s = sess(fclient, socket_timeout=1.0, total_timeout=2.0)
    reply = PUT_OK if write else GET_OK
    node.push(Then(reply[:piece], Delay(0.05, reply[piece:])))
    r, dt = timed(lambda: s.put(fkey(), {"a": 1}) if write else s.get(fkey()))
    assert not isinstance(r, BaseException), repr(r)
    if not write:
        assert r.bins == {"a": 5}


@fake
@pytest.mark.parametrize("piece", [1, 8, 9, 10, 22])
def test_reply_arriving_in_pieces_async(node, piece):
    from cspike import Client

    async def main():
        async with Client(node.seed, tend_interval=0.05) as c:
            s = c.create_session(behavior(total_timeout=2.0, socket_timeout=1.0,
                                          max_retries=0, send_key=False))
            node.push(Then(GET_OK[:piece], Delay(0.05, GET_OK[piece:])))
            assert (await s.get(fkey())).bins == {"a": 5}

    r, _dt = timed(lambda: asyncio.run(main()))
    assert r is None, repr(r)


@fake
@pytest.mark.parametrize("piece", [1, 8, 9, 10, 17])
def test_info_reply_arriving_in_pieces(piece):
    """The same for the seed's info exchange: a 9-byte first read made
    read_full() step past its buffer and loop forever."""
    from cspike import SyncClient
    with FakeNode(default_info("P1")) as n:
        def split(req):
            full = n.info_reply(req)
            return Then(full[:piece], Delay(0.05, full[piece:]))
        n.info_push(split)  # the seed's first info exchange
        c = SyncClient(n.seed, connect_timeout=1.0)
        r, dt = timed(c.connect, limit=5)
        assert not isinstance(r, BaseException), repr(r)
        assert [x for x, _h, _p in c.nodes()] == ["P1"]
        c.close()


@fake
def test_slow_reply_within_socket_timeout_succeeds(node, fclient):
    s = sess(fclient, socket_timeout=1.0, total_timeout=2.0)
    node.push(Delay(0.3, GET_OK))
    assert s.get(fkey()).bins == {"a": 5}


#: Replies whose framing is broken: the stream position is lost, so the
#: connection must be discarded; checked for reads and writes.
BAD_FRAMES = [
    (struct.pack(">Q", (2 << 56) | (3 << 48) | (200 * 1024 * 1024)), "oversized size"),
    (struct.pack(">Q", (2 << 56) | (9 << 48) | 30) + bytes(30), "proto type 9"),
    (struct.pack(">Q", (2 << 56) | (1 << 48) | 5) + b"node\n", "info type for a data command"),
    (struct.pack(">Q", (1 << 56) | (3 << 48) | 22) + bytes(22), "proto version 1"),
    (W.proto(4, struct.pack(">Q", 30) + b"x" * 10), "compressed, not requested"),
    (W.proto(3, b""), "empty body"),
    (W.proto(3, bytes(10)), "body shorter than an as_msg header"),
    (W.proto(3, bytes.fromhex("16000000000000000001000000000000000000000003")),
     "n_ops larger than present"),
    (W.proto(3, bytes.fromhex("16000000000000000001000000000000000000000000") + b"\x00"),
     "trailing byte after the as_msg"),
    (W.proto(3, bytes.fromhex("16000000000000000001000000000000000000010000") + b"\xff" * 8),
     "field size past the end"),
]
#: Well-framed replies carrying a malformed value (decoded for reads only).
BAD_VALUES = [
    (W.Msg(ops=[W.Op(1, W.P_INTEGER, b"a", b"\x00\x01\x02")]).encode(), "3-byte integer"),
    (W.Msg(ops=[W.Op(1, W.P_FLOAT, b"a", b"\x00")]).encode(), "1-byte float"),
    (W.Msg(ops=[W.Op(1, W.P_BOOL, b"a", b"\x00\x01")]).encode(), "2-byte bool"),
    (W.Msg(ops=[W.Op(1, W.P_LIST, b"a", b"\x93\x01")]).encode(), "list shorter than its header"),
    (W.Msg(ops=[W.Op(1, W.P_MAP, b"a", b"\xdf\xff\xff\xff\xff")]).encode(), "map of 4G entries"),
    (W.Msg(ops=[W.Op(1, W.P_LIST, b"a", b"\x91\xc1")]).encode(), "msgpack 0xc1 (never used)"),
    (W.Msg(ops=[W.Op(1, W.P_LIST, b"a", b"\x91\x01\x02")]).encode(), "trailing msgpack bytes"),
    (W.Msg(ops=[W.Op(1, W.P_LIST, b"a", b"\x91" * 100000 + b"\x01")]).encode(), "nesting 100000 deep"),
    (W.Msg(ops=[W.Op(1, W.P_GEOJSON, b"a", b"\x00\x00\x05")]).encode(), "GeoJSON cells past the end"),
]
CASES = ([pytest.param(f, w, False, id=f"read-{w}") for f, w in BAD_FRAMES + BAD_VALUES]
         + [pytest.param(f, w, True, id=f"write-{w}") for f, w in BAD_FRAMES])


@fake
@pytest.mark.parametrize("frame,what,write", CASES)
def test_malformed_reply_is_a_protocol_error(node, fclient, frame, what, write):
    from cspike import AerospikeError, ProtocolError
    s = sess(fclient, max_retries=2)
    node.push(Reply(frame, close=False))
    e, dt = timed(lambda: s.put(fkey(), {"a": 1}) if write else s.get(fkey()))
    assert isinstance(e, AerospikeError), f"{what}: {e!r}"
    assert isinstance(e, ProtocolError), f"{what}: {e!r}"
    assert e.result_code == -21
    if write:
        assert e.in_doubt is True, "the request was sent: a write may have happened"
    else:
        assert e.in_doubt is False
    assert dt < 1.0, "no waiting for bytes that will never come"
    # After a framing error the connection is not reused (its stream
    # position is unknown); a well-framed reply with a bad value may be.
    before = node.accepted
    node.push(GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    if (frame, what) in BAD_FRAMES:
        assert node.accepted == before + 1


@fake
def test_unsolicited_extra_bytes_discard_the_connection(node, fclient):
    """A reply followed by bytes nobody asked for: the answer is used, the
    connection is not pooled (its stream position is unknown)."""
    s = sess(fclient)
    node.push(GET_OK + GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    before = node.accepted
    node.push(GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    assert node.accepted == before + 1


@fake
def test_random_garbage_never_crashes_or_hangs(node, fclient):
    from cspike import AerospikeError
    rnd = random.Random(1234)
    s = sess(fclient, socket_timeout=0.2, total_timeout=0.5)
    for i in range(150):
        kind = rnd.randrange(4)
        if kind == 0:
            data = bytes(rnd.randrange(256) for _ in range(rnd.randrange(1, 64)))
        elif kind == 1:  # a valid proto header over a random body
            body = bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 80)))
            data = W.proto(3, body)
        else:  # a real reply with a few bytes flipped
            data = bytearray(GET_OK if kind == 2 else msg(2))
            for _ in range(rnd.randrange(1, 4)):
                data[rnd.randrange(8, len(data))] = rnd.randrange(256)
            data = bytes(data)
        node.push(Reply(data, close=bool(rnd.randrange(2))))
        try:
            r = s.get(fkey(i)) if i % 2 else s.operate(fkey(i), _ops())
        except AerospikeError:
            pass
        else:
            assert r is not None
        node.reset()


def _ops():
    from cspike import Operation as Op
    return [Op.get("a"), Op.add("b", 1)]


# --------------------------------------------------------------------------- in doubt

@fake
def test_in_doubt_rules(node, fclient):
    from cspike import (ForbiddenError, RecordExistsError, TimeoutError)
    from cspike import ConnectionError
    w = sess(fclient, max_retries=1)
    r = sess(fclient, max_retries=0)
    # A definite server answer on the first try: not in doubt.
    node.push(msg(5))
    with pytest.raises(RecordExistsError) as ei:
        w.put(fkey(), {"a": 1})
    assert ei.value.in_doubt is False
    # Server-side timeout: the write may have been applied.
    node.push(msg(9), msg(9))
    with pytest.raises(TimeoutError) as ei:
        w.put(fkey(), {"a": 1})
    assert ei.value.in_doubt is True
    # Reads are never in doubt.
    node.push(msg(9))
    with pytest.raises(TimeoutError) as ei:
        r.get(fkey())
    assert ei.value.in_doubt is False
    # Sent twice (first attempt lost), then a definite error: still in doubt,
    # the first attempt may have been applied.
    node.push(Close(), msg(22))
    with pytest.raises(ForbiddenError) as ei:
        w.put(fkey(), {"a": 1})
    assert ei.value.in_doubt is True
    # Connection dropped after the request: in doubt for writes, not reads.
    node.push(Close())
    with pytest.raises(ConnectionError) as ei:
        sess(fclient).delete(fkey())
    assert ei.value.in_doubt is True


@fake
def test_write_never_sent_is_not_in_doubt(node, fclient):
    """The node is gone before the request goes out (no pooled data
    connection exists yet, so the connect is refused): nothing was sent,
    the write is not in doubt."""
    from cspike import ConnectionError
    s = sess(fclient, max_retries=1, total_timeout=1.0)
    node.stop()
    e, dt = timed(lambda: s.put(fkey(), {"a": 1}))
    assert isinstance(e, ConnectionError), repr(e)
    assert e.in_doubt is False
    assert dt < 2.0


@fake
def test_async_faults(node, fclient):
    from cspike import Client, ConnectionError, ProtocolError, TimeoutError

    async def main():
        async with Client(node.seed, tend_interval=0.05) as c:
            s = c.create_session(behavior(total_timeout=0.5, socket_timeout=0.3,
                                          max_retries=0, send_key=False))
            node.push(Partial(PUT_OK, 5))
            with pytest.raises(ConnectionError) as ei:
                await s.put(fkey(), {"a": 1})
            assert ei.value.in_doubt is True
            node.push(Reply(W.proto(9, bytes(22))))
            with pytest.raises(ProtocolError):
                await s.get(fkey())
            node.default = Hang()
            t0 = time.monotonic()
            with pytest.raises(TimeoutError):
                await s.get(fkey())
            assert time.monotonic() - t0 < 1.5
            node.default = Close()
            node.push(GET_OK)
            assert (await s.get(fkey())).bins == {"a": 5}

    asyncio.run(main())


# --------------------------------------------------------------------------- tend faults

@fake
def test_broken_tend_answers_do_not_break_commands(node, fclient):
    """The tend connection gets garbage for a while: commands keep working
    on the current map; when info answers come back, so does tending."""
    s = sess(fclient)
    node.info_action = Reply(b"\x02\x01\xff\xff\xff\xff\xff\xff garbage")
    time.sleep(0.12)  # two or three failed tends (5 remove a lone node)
    node.push(GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    node.info_action = None
    time.sleep(0.2)
    node.push(GET_OK)
    assert s.get(fkey()).bins == {"a": 5}
    assert fclient.is_connected


@fake
def test_silent_tend_connection_does_not_wedge_the_client():
    """The node stops answering info on the tend connection for longer than
    the connect timeout (1 s): the tend must give up on that exchange (and
    tend again later), and close() must not hang on the tend thread."""
    from cspike import SyncClient
    from chelpers import wait_for
    n = FakeNode(default_info("F1"))
    c = SyncClient(n.seed, tend_interval=0.05, connect_timeout=1.0)
    c.connect()
    try:
        n.info_action = Hang()
        time.sleep(1.6)
        n.info_action = None
        before = c._cluster.tend_count
        wait_for(lambda: c._cluster.tend_count > before + 2, timeout=5,
                 what="the tend thread to run again")
        r, dt = timed(c.close, limit=5)
        assert not isinstance(r, BaseException), repr(r)
    finally:
        n.stop()  # unblocks a stuck tend thread, so teardown cannot hang
        c.close()


@fake
def test_lone_node_removed_after_tend_failures_comes_back(node, fclient):
    """Five failed tends remove a lone node (protocol-core 3.4); commands
    then fail fast with a clear error, and the client re-seeds once the
    node answers again."""
    from cspike import AerospikeError
    from chelpers import wait_for
    s = sess(fclient)
    node.info_action = Close()
    wait_for(lambda: not fclient.nodes(), timeout=5, what="node removal")
    e, dt = timed(lambda: s.get(fkey()))
    assert isinstance(e, AerospikeError) and dt < 1.0, repr(e)
    node.info_action = None
    wait_for(lambda: fclient.nodes(), timeout=5, what="re-seeding")
    node.push(GET_OK)
    assert s.get(fkey()).bins == {"a": 5}


# --------------------------------------------------------------------------- seeds

def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@fake
def test_unreachable_seed_refused(node):
    from cspike import ConnectionError, SyncClient
    c = SyncClient(f"127.0.0.1:{_closed_port()}", connect_timeout=1.0)
    e, dt = timed(c.connect)
    assert isinstance(e, ConnectionError), repr(e)
    assert dt < 1.0


@fake
def test_unreachable_seed_blackhole_within_connect_timeout():
    """A listener whose backlog never completes the handshake is hard to
    build portably; an unroutable address either times out within the
    connect timeout or fails at once."""
    from cspike import ConnectionError, SyncClient
    c = SyncClient("10.255.255.1:3000", connect_timeout=0.5)
    e, dt = timed(c.connect)
    assert isinstance(e, ConnectionError), repr(e)
    assert dt < 0.5 + 0.5


@fake
@pytest.mark.parametrize("action", [Hang(), Close(), Reply(b"\x02\x01\x00\x00\x00\x00\x00\x03xx"),
                                    Reply(W.proto(1, b"node\tA1\n"))],
                         ids=["silent", "closes", "garbage", "no build"])
def test_seed_that_is_not_a_usable_node(action):
    from cspike import ConnectionError, SyncClient
    with FakeNode(default_info("S1")) as n:
        n.info_action = action
        c = SyncClient(n.seed, connect_timeout=0.5)
        e, dt = timed(c.connect)
        assert isinstance(e, ConnectionError), repr(e)
        assert dt < 0.5 + 0.7
        assert "S1" not in str(c.__dict__.get("_cluster"))


@fake
def test_several_unreachable_seeds_then_one_good(node):
    from cspike import SyncClient
    seeds = f"127.0.0.1:{_closed_port()},127.0.0.1:{_closed_port()},{node.seed}"
    c = SyncClient(seeds, connect_timeout=0.5)
    c.connect()
    try:
        assert [n for n, _h, _p in c.nodes()] == ["F1"]
    finally:
        c.close()


@fake
def test_async_unreachable_seed():
    from cspike import Client, ConnectionError

    async def main():
        c = Client(f"127.0.0.1:{_closed_port()}", connect_timeout=0.5)
        t0 = time.monotonic()
        with pytest.raises(ConnectionError):
            await c.connect()
        assert time.monotonic() - t0 < 1.5

    asyncio.run(main())


@fake
def test_client_not_connected_and_closed(node):
    from cspike import ClientClosedError, ConnectionError, SyncClient
    c = SyncClient(node.seed)
    with pytest.raises(ConnectionError):
        c.create_session()
    c.connect()
    s = c.create_session()
    c.close()
    c.close()  # idempotent
    with pytest.raises(ClientClosedError):
        s.get(fkey())
    assert c.is_connected is False


@fake
def test_close_while_commands_wait(node, fclient):
    """Closing the client while another thread waits on a silent node ends
    that wait with an error, within the command's timeouts."""
    from cspike import AerospikeError
    s = sess(fclient, total_timeout=1.5, socket_timeout=1.5)
    node.default = Hang()
    out = []

    def worker():
        try:
            s.get(fkey())
        except AerospikeError as e:
            out.append(e)

    t = threading.Thread(target=worker)
    t.start()
    time.sleep(0.2)
    fclient.close()
    t.join(5)
    assert not t.is_alive()
    assert out and isinstance(out[0], AerospikeError)


# --------------------------------------------------------------------------- bad Python input

@fake
class TestBadInput:
    """Caller mistakes: TypeError / ValueError naming the argument, raised
    before anything is sent."""

    @pytest.fixture(autouse=True)
    def _s(self, node, fclient):
        self.node = node
        self.s = sess(fclient)
        yield
        assert node.requests == [], "nothing may be sent for bad input"

    @pytest.mark.parametrize("args,exc,word", [
        ((1, "s", "k"), TypeError, "namespace"),
        (("", "s", "k"), ValueError, "namespace"),
        (("n" * 32, "s", "k"), ValueError, "namespace"),
        (("test", 5, "k"), TypeError, "set"),
        (("test", "s" * 64, "k"), ValueError, "set"),
        (("test", "s", 1.5), TypeError, "key"),
        (("test", "s", None), TypeError, "key"),
        (("test", "s", [1]), TypeError, "key"),
        (("test", "s", {"a": 1}), TypeError, "key"),
        (("test", "s", True), TypeError, "key"),
        (("test", "s", 2**63), ValueError, "key"),
        (("te\x00st", "s", "k"), ValueError, "namespace"),
    ])
    def test_key(self, args, exc, word):
        from cspike import Key
        with pytest.raises(exc, match=word):
            Key(*args)

    @pytest.mark.parametrize("value", [object(), {1, 2}, 1 + 2j, Ellipsis, len,
                                       __import__("decimal").Decimal("1.5"),
                                       __import__("datetime").datetime(2020, 1, 1)],
                             ids=lambda v: type(v).__name__)
    def test_unsupported_bin_value(self, value):
        with pytest.raises(TypeError, match="bad_bin"):
            self.s.put(fkey(), {"ok": 1, "bad_bin": value})
        with pytest.raises(TypeError, match="unsupported"):
            self.s.put(fkey(), {"l": [1, [value]]})
        with pytest.raises(TypeError, match="unsupported"):
            self.s.put(fkey(), {"m": {"k": value}})
        with pytest.raises(TypeError):
            self.s.put(fkey(), {"m": {value: 1}} if _hashable(value) else {"m": [value]})

    def test_integers_out_of_range(self):
        with pytest.raises(ValueError, match="big"):
            self.s.put(fkey(), {"big": 2**63})
        with pytest.raises(ValueError, match="big"):
            self.s.put(fkey(), {"big": -2**63 - 1})
        with pytest.raises(ValueError):
            self.s.put(fkey(), {"l": [2**64]})
        with pytest.raises(ValueError):
            self.s.put(fkey(), {"l": [-2**63 - 1]})

    def test_bin_names(self):
        with pytest.raises(ValueError, match="abcdefghijklmnop"):
            self.s.put(fkey(), {"abcdefghijklmnop": 1})
        with pytest.raises(ValueError, match="15|bytes"):
            self.s.put(fkey(), {"\u00e9" * 8: 1})  # 16 bytes of UTF-8
        with pytest.raises(TypeError, match="bin name"):
            self.s.put(fkey(), {1: 1})
        with pytest.raises(TypeError, match="bin name"):
            self.s.get(fkey(), bins=[b"a"])
        with pytest.raises(ValueError, match="abcdefghijklmnop"):
            self.s.get(fkey(), bins=["abcdefghijklmnop"])
        with pytest.raises(TypeError, match="bins"):
            self.s.get(fkey(), bins=5)
        with pytest.raises(ValueError, match="bin"):
            self.s.put(fkey(), {})

    def test_bins_and_keys_types(self):
        with pytest.raises(TypeError, match="bins"):
            self.s.put(fkey(), [("a", 1)])
        with pytest.raises(TypeError, match="key"):
            self.s.get(("test", "s", "k"))
        with pytest.raises(TypeError, match="key"):
            self.s.put("k", {"a": 1})
        with pytest.raises(TypeError, match="key"):
            self.s.delete(None)

    def test_cyclic_and_deep_values(self):
        a = []
        a.append(a)
        with pytest.raises(ValueError, match="nested|cyclic"):
            self.s.put(fkey(), {"a": a})
        d = {}
        d["d"] = d
        with pytest.raises(ValueError, match="nested|cyclic"):
            self.s.put(fkey(), {"d": d})

    def test_operations(self):
        from cspike import Operation as Op
        with pytest.raises(ValueError, match="operat"):
            self.s.operate(fkey(), [])
        with pytest.raises(TypeError, match="operation"):
            self.s.operate(fkey(), ["get a"])
        with pytest.raises(TypeError):
            self.s.operate(fkey(), 5)
        with pytest.raises(TypeError, match="int or float"):
            Op.add("a", "1")
        with pytest.raises(TypeError, match="int or float"):
            Op.add("a", True)
        with pytest.raises(TypeError, match="str or bytes"):
            Op.append("a", 1)
        with pytest.raises(TypeError, match="str or bytes"):
            Op.prepend("a", [1])
        with pytest.raises(ValueError, match="op code"):
            self.s.operate(fkey(), [(99, "a", None)])
        with pytest.raises(TypeError, match="a"):
            self.s.operate(fkey(), [Op.put("a", object())])
        with pytest.raises(ValueError, match="abcdefghijklmnop"):
            self.s.operate(fkey(), [Op.get("abcdefghijklmnop")])

    @pytest.mark.parametrize("field,value,exc", [
        ("total_timeout", -1, ValueError), ("socket_timeout", "1", TypeError),
        ("max_retries", -1, ValueError), ("max_retries", 1.5, TypeError),
        ("send_key", 1, TypeError), ("replica", "NOPE", ValueError),
        ("read_touch_ttl_percent", 101, ValueError),
        ("retry_delay", float("nan"), ValueError),
    ])
    def test_policy_values(self, field, value, exc):
        with pytest.raises(exc, match=field):
            behavior(**{field: value})

    @pytest.mark.parametrize("seeds,exc", [
        ("", ValueError), ("host:notaport", ValueError), ("host:0", ValueError),
        ("host:70000", ValueError), ("[::1", ValueError), (None, TypeError), (5, TypeError),
    ])
    def test_seeds(self, seeds, exc):
        from cspike import SyncClient
        with pytest.raises(exc, match="seed"):
            SyncClient(seeds)

    def test_client_settings(self):
        from cspike import SyncClient
        with pytest.raises(TypeError, match="nope"):
            SyncClient("127.0.0.1:3000", nope=1)
        with pytest.raises(ValueError, match="connect_timeout"):
            SyncClient("127.0.0.1:3000", connect_timeout=-1)
        with pytest.raises(TypeError, match="behavior"):
            self.s.client.create_session("DEFAULT")


def _hashable(v) -> bool:
    try:
        hash(v)
        return True
    except TypeError:
        return False


# --------------------------------------------------------------------------- embedded server faults

@pytest.mark.faults
class TestEmbeddedServerFaults:
    """The same failure classes, injected by the embedded server."""

    @pytest.fixture
    def srv(self, aerospike_server_factory):
        return aerospike_server_factory(nodes=1)

    @pytest.fixture
    def c(self, srv):
        from cspike import SyncClient
        c = SyncClient(srv.seeds, tend_interval=0.1)
        c.connect()
        yield c
        c.close()

    @pytest.mark.parametrize("mode,exc", [
        ("garbage", "ProtocolError"), ("truncate", "ConnectionError"),
        ("type", "ProtocolError"), ("version", "ProtocolError"),
        ("oversize", "ProtocolError"),
    ])
    def test_corrupt_next(self, srv, c, key, mode, exc):
        import cspike
        s = sess(c, max_retries=0)
        k = key()
        s.put(k, {"a": 1})
        srv.corrupt_next(0, mode)
        e, dt = timed(lambda: s.get(k))
        assert isinstance(e, getattr(cspike, exc)), repr(e)
        assert dt < 1.5
        assert s.get(k).bins == {"a": 1}
        srv.corrupt_next(0, mode)
        e, _ = timed(lambda: s.put(k, {"a": 2}))
        assert isinstance(e, cspike.AerospikeError)
        assert e.in_doubt is True

    def test_close_after_reply_and_drop(self, srv, c, key):
        from cspike import ConnectionError
        s = sess(c, max_retries=0)
        k = key()
        s.put(k, {"a": 1})
        srv.close_after(0, 1)  # reply, then close: the answer counts
        assert s.get(k).bins == {"a": 1}
        # (a retry covers the closed pooled connection; see
        # test_pooled_connection_closed_by_server_is_not_used)
        assert sess(c, max_retries=1).get(k).bins == {"a": 1}
        srv.close_after(0, 1, drop=True)
        with pytest.raises(ConnectionError) as ei:
            s.put(k, {"a": 2})
        assert ei.value.in_doubt is True
        srv.close_after(0, 1, drop=True)
        assert sess(c, max_retries=1).get(k).bins["a"] in (1, 2)

    def test_delay_socket_and_total_timeouts(self, srv, c, key):
        from cspike import TimeoutError
        k = key()
        sess(c).put(k, {"a": 1})
        srv.delay(0, 400)
        try:
            e, dt = timed(lambda: sess(c, socket_timeout=0.1, total_timeout=2.0).get(k))
            assert isinstance(e, TimeoutError) and e.in_doubt is False, repr(e)
            assert dt < 0.6
            e, dt = timed(lambda: sess(c, socket_timeout=0, total_timeout=0.2).put(k, {"a": 2}))
            assert isinstance(e, TimeoutError) and e.in_doubt is True, repr(e)
            assert dt < 0.6
            e, dt = timed(lambda: sess(c, socket_timeout=0.15, total_timeout=0.6,
                                       max_retries=5).get(k))
            assert isinstance(e, TimeoutError), repr(e)
            assert 0.5 <= dt < 1.2
            assert sess(c, socket_timeout=1.0, total_timeout=2.0).get(k).bins["a"] in (1, 2)
        finally:
            srv.delay(0, 0)

    @pytest.mark.parametrize("rc,exc,retried", [
        (9, "TimeoutError", True), (11, "PartitionUnavailableError", True),
        (18, "CapacityError", True), (14, "KeyBusyError", False),
        (22, "ForbiddenError", False), (1, "ServerError", False),
    ])
    def test_fail_next_retry_policy(self, srv, c, key, rc, exc, retried):
        import cspike
        k = key()
        sess(c).put(k, {"a": 1})
        s = sess(c, max_retries=1, replica="MASTER")
        srv.fail_next(0, rc, count=1)
        if retried:
            assert s.get(k).bins == {"a": 1}
        else:
            with pytest.raises(getattr(cspike, exc)) as ei:
                s.get(k)
            assert ei.value.result_code == rc
        srv.fail_next(0, rc, count=2)
        with pytest.raises(getattr(cspike, exc)) as ei:
            s.get(k)
        assert ei.value.result_code == rc
        srv.clear_faults(0)

    def test_sleep_between_retries(self, srv, c, key):
        k = key()
        sess(c).put(k, {"a": 1})
        s = sess(c, max_retries=2, retry_delay=0.2, replica="MASTER")
        srv.fail_next(0, 18, count=2)
        t0 = time.monotonic()
        assert s.get(k).bins == {"a": 1}
        assert time.monotonic() - t0 >= 0.38
        s0 = sess(c, max_retries=2, retry_delay=0, replica="MASTER")
        srv.fail_next(0, 18, count=2)
        t0 = time.monotonic()
        assert s0.get(k).bins == {"a": 1}
        assert time.monotonic() - t0 < 0.2
