"""qmail-send's rewrite(), the bounce-side prepend strip, smtproutes and MX choice."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.qmail.routing import (
    MX,
    Relay,
    Route,
    RoutingConfig,
    literal_ip,
    mx_candidates,
    mx_limit,
    order_mx,
    rewrite,
    smtp_route,
    strip_prepend,
)
from sim.qmail.text import case_lower

ORACLE = {"envnoathost": "oracle.test", "locals": ["oracle.test", "localhost"]}

REWRITES = [
    # (recipient, extra config, channel, rewritten address)
    ("alice@oracle.test", {}, "local", "alice@oracle.test"),
    ("alice", {}, "local", "alice@oracle.test"),
    ("", {}, "local", "@oracle.test"),
    ("bob@ORACLE.Test", {}, "local", "bob@ORACLE.Test"),
    ("joe@example.com", {}, "remote", "joe@example.com"),
    ("dude@tommy.gov", {"virtualdomains": [("tommy.gov", "fred")]}, "local", "fred-dude@tommy.gov"),
    ("Dude@TOMMY.gov", {"virtualdomains": {"tommy.gov": "fred"}}, "local", "fred-Dude@TOMMY.gov"),
    (
        "x@nowhere.mil",
        {"virtualdomains": [("nowhere.mil", "joe-foo")]},
        "local",
        "joe-foo-x@nowhere.mil",
    ),
    ("x@a.fax", {"virtualdomains": [(".fax", "uucp-fax")]}, "local", "uucp-fax-x@a.fax"),
    (
        "x@any.where",
        {"virtualdomains": [("", "alias-catchall")]},
        "local",
        "alias-catchall-x@any.where",
    ),
    # most specific first: whole address, domain, .suffixes left to right, the empty key
    (
        "joe@tommy.gov",
        {"virtualdomains": [("tommy.gov", "fred"), ("joe@tommy.gov", "bob")]},
        "local",
        "bob-joe@tommy.gov",
    ),
    (
        "x@nowhere.mil",
        {"virtualdomains": [(".nowhere.mil", "joe-foo-host"), ("nowhere.mil", "joe-foo")]},
        "local",
        "joe-foo-x@nowhere.mil",
    ),
    (
        "x@sos.heaven.af.mil",
        {"virtualdomains": [(".af.mil", "mil"), (".heaven.af.mil", "heaven"), ("", "all")]},
        "local",
        "heaven-x@sos.heaven.af.mil",
    ),
    # an empty prepend is an exception, even with a catch-all behind it
    ("a@ex.org", {"virtualdomains": [("ex.org", ""), ("", "catch")]}, "remote", "a@ex.org"),
    # locals are checked before virtualdomains
    ("a@oracle.test", {"virtualdomains": [("oracle.test", "v")]}, "local", "a@oracle.test"),
    # duplicate keys: the later line wins
    (
        "d@tommy.gov",
        {"virtualdomains": [("tommy.gov", "fred"), ("TOMMY.GOV", "barney")]},
        "local",
        "barney-d@tommy.gov",
    ),
    # the percent hack: rightmost %, repeated while the domain is listed
    ("joe%elsewhere.org@hack.org", {"percenthack": ["hack.org"]}, "remote", "joe@elsewhere.org"),
    (
        "a%b.org%hack2.org@hack.org",
        {"percenthack": ["hack.org", "hack2.org"]},
        "remote",
        "a@b.org",
    ),
    ("a%b.org%c.org@hack.org", {"percenthack": ["hack.org"]}, "remote", "a%b.org@c.org"),
    ("joe%oracle.test@hack.org", {"percenthack": ["hack.org"]}, "local", "joe@oracle.test"),
    ("joe%elsewhere.org@x.org", {"percenthack": ["hack.org"]}, "remote", "joe%elsewhere.org@x.org"),
    ("nopercent@hack.org", {"percenthack": ["hack.org"]}, "remote", "nopercent@hack.org"),
    # constmap folds ASCII letters only
    ("a@\u00c9x.org", {"locals": ["\u00e9x.org"]}, "remote", "a@\u00c9x.org"),
]


@pytest.mark.parametrize(("recipient", "extra", "channel", "address"), REWRITES)
def test_rewrite_routes_recipient_as_qmail_send(recipient, extra, channel, address):
    route = rewrite(recipient, RoutingConfig(**{**ORACLE, **extra}))
    assert (route.channel, route.address) == (channel, address)


WHYS = [
    (
        "dude@tommy.gov",
        {"virtualdomains": [("tommy.gov", "fred")]},
        "tommy.gov in virtualdomains (tommy.gov:fred) → local fred-dude@tommy.gov",
    ),
    ("alice@oracle.test", {}, "oracle.test in locals → local alice@oracle.test"),
    ("alice", {}, "no @: appended @oracle.test; oracle.test in locals → local alice@oracle.test"),
    ("joe@example.com", {}, "example.com not in locals or virtualdomains → remote joe@example.com"),
    (
        "a@ex.org",
        {"virtualdomains": [("ex.org", "")]},
        "ex.org in virtualdomains with empty prepend (ex.org:) → remote a@ex.org",
    ),
    (
        "x@y.z",
        {"virtualdomains": [("", "catch")]},
        "the empty key in virtualdomains (:catch) → local catch-x@y.z",
    ),
    (
        "j%e.org@hack.org",
        {"percenthack": ["hack.org"]},
        "percenthack: j%e.org@hack.org → j@e.org; e.org not in locals or virtualdomains"
        " → remote j@e.org",
    ),
]


@pytest.mark.parametrize(("recipient", "extra", "why"), WHYS)
def test_rewrite_explains_its_decision(recipient, extra, why):
    assert rewrite(recipient, RoutingConfig(**{**ORACLE, **extra})).why == why


def test_virtualdomain_rewrite_is_not_idempotent():
    config = RoutingConfig(virtualdomains=[("tommy.gov", "fred")])
    once = rewrite("dude@tommy.gov", config)
    assert rewrite(once.address, config).address == "fred-fred-dude@tommy.gov"


def test_routing_config_accepts_a_one_shot_iterator():
    config = RoutingConfig(virtualdomains=iter([("tommy.gov", "fred")]))
    assert rewrite("a@tommy.gov", config).address == "fred-a@tommy.gov"
    assert rewrite("b@tommy.gov", config).address == "fred-b@tommy.gov"


STRIPS = [
    ("fred-dude@tommy.gov", [("tommy.gov", "fred")], "dude@tommy.gov"),
    ("uucp-fax-x@a.fax", [(".fax", "uucp-fax")], "x@a.fax"),
    ("catch-x@y.z", [("", "catch")], "x@y.z"),
    ("barney-dude@tommy.gov", [("tommy.gov", "fred")], "barney-dude@tommy.gov"),
    ("Fred-dude@tommy.gov", [("tommy.gov", "fred")], "Fred-dude@tommy.gov"),  # case-sensitive
    ("freddude@tommy.gov", [("tommy.gov", "fred")], "freddude@tommy.gov"),  # needs the `-`
    ("a@ex.org", [("ex.org", ""), ("", "catch")], "a@ex.org"),  # an exception stops the search
    ("bob-joe@tommy.gov", [("joe@tommy.gov", "bob")], "bob-joe@tommy.gov"),  # no virtual users
    ("noat", [("", "catch")], "noat"),
]


@pytest.mark.parametrize(("recipient", "vdoms", "shown"), STRIPS)
def test_bounce_shows_recipient_without_virtualdomain_prepend(recipient, vdoms, shown):
    assert strip_prepend(recipient, RoutingConfig(virtualdomains=vdoms)) == shown


MAN_ROUTES = [("inside.af.mil", "firewall.af.mil:26"), (".af.mil", "")]
ROUTES = [
    ("inside.af.mil", MAN_ROUTES, Relay("firewall.af.mil", 26)),
    ("INSIDE.af.MIL", MAN_ROUTES, Relay("firewall.af.mil", 26)),
    ("other.af.mil", MAN_ROUTES, None),
    ("af.mil", MAN_ROUTES, None),
    ("example.com", MAN_ROUTES, None),
    ("example.com", [("", "bigbang.af.mil")], Relay("bigbang.af.mil", 25)),
    ("x.example.com", [("example.com", "relay.test")], None),  # only dot-suffixes match
    ("x.example.com", [(".example.com", "relay.test")], Relay("relay.test")),
    ("x.test", [("x.test", "a"), ("x.test", "b")], Relay("b")),  # later line wins
    ("x.test", [("x.test", "[10.0.0.1]:2525")], Relay("[10.0.0.1]", 2525)),
    ("x.test", [("x.test", "relay:")], Relay("relay", 0)),  # scan_ulong of nothing is 0
    ("x.test", [("x.test", "relay:26x")], Relay("relay", 26)),
    ("x.test", {}, None),
]


@pytest.mark.parametrize(("host", "routes", "relay"), ROUTES)
def test_smtproutes_picks_relay_for_host(host, routes, relay):
    assert smtp_route(host, routes) == relay


@pytest.mark.parametrize(
    ("host", "ip"),
    [
        ("1.2.3.4", "1.2.3.4"),
        ("[1.2.3.4]", "1.2.3.4"),
        ("[1.2.3.260]", "1.2.3.4"),
        ("1.2.3", None),
        ("[1.2.3.4", None),
        ("1.2.3.4.5", None),
        ("mail.example.com", None),
        ("", None),
    ],
)
def test_literal_ip_skips_dns(host, ip):
    assert literal_ip(host) == ip


class Reverser:
    """A stand-in rng that reverses each group, so the test can see the shuffle."""

    def shuffle(self, x):
        x.reverse()


def test_mx_sorted_by_preference_shuffled_among_equals():
    records = [MX(10, "a"), MX(5, "b"), MX(10, "c"), MX(20, "d")]
    assert order_mx(records, Reverser()) == [MX(5, "b"), MX(10, "c"), MX(10, "a"), MX(20, "d")]


def test_mx_order_with_seeded_rng_keeps_groups():
    records = [MX(p, f"h{i}") for i, p in enumerate([10, 20, 10, 10, 20, 0])]
    ordered = order_mx(records, random.Random(7))
    assert [mx.preference for mx in ordered] == [0, 10, 10, 10, 20, 20]
    assert sorted(ordered, key=lambda mx: mx.host) == sorted(records, key=lambda mx: mx.host)


ADDRS = [MX(10, "10.0.0.1"), MX(20, "10.0.0.2"), MX(30, "10.0.0.3")]
CANDIDATES = [
    ((), False, False, 100000, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
    (("10.0.0.2",), False, False, 20, ["10.0.0.1"]),
    (("10.0.0.1",), False, False, 10, []),  # best MX is me: "listed as best-preference MX"
    (("10.0.0.1",), True, False, 300000, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
    (("10.0.0.1",), False, True, 500000, ["10.0.0.1", "10.0.0.2", "10.0.0.3"]),
]


@pytest.mark.parametrize(("mine", "relayed", "aliases", "limit", "tried"), CANDIDATES)
def test_ambiguous_mx_rule_keeps_hosts_better_than_me(mine, relayed, aliases, limit, tried):
    assert mx_limit(ADDRS, mine, relayed=relayed, all_aliases=aliases) == limit
    got = mx_candidates(ADDRS, mine, relayed=relayed, all_aliases=aliases)
    assert [mx.host for mx in got] == tried


addresses = st.text(alphabet=st.sampled_from("ab%@.-Xé\n "), max_size=20)
domains = st.lists(st.text(alphabet=st.sampled_from("ab.%@X"), max_size=6), max_size=4)


@settings(max_examples=300, deadline=None)
@given(addresses, domains, domains, st.lists(st.tuples(addresses, addresses), max_size=4))
def test_rewrite_never_raises_and_always_has_an_at(recipient, locals_, hacks, vdoms):
    config = RoutingConfig("envnoathost", locals_, vdoms, hacks)
    route = rewrite(recipient, config)
    assert isinstance(route, Route)
    assert route.channel in ("local", "remote")
    assert "@" in route.address
    strip_prepend(route.address, config)


@settings(max_examples=300, deadline=None)
@given(addresses, domains, domains)
def test_rewrite_is_idempotent_for_locals(recipient, locals_, hacks):
    config = RoutingConfig("oracle.test", [*locals_, "oracle.test"], (), hacks)
    route = rewrite(recipient, config)
    local, _, domain = route.address.rpartition("@")
    hacked = case_lower(domain) in {case_lower(h) for h in hacks}
    if route.channel == "local" and not (hacked and "%" in local):
        assert rewrite(route.address, config) == Route(
            "local", route.address, f"{domain} in locals → local {route.address}"
        )


@settings(max_examples=200, deadline=None)
@given(addresses, st.lists(st.tuples(addresses, addresses), max_size=4))
def test_smtp_route_never_raises(host, routes):
    relay = smtp_route(host, routes)
    assert relay is None or 0 <= relay.port <= 65535
