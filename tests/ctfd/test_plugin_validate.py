"""The plugin's checks of a docker challenge's settings, and the flag key derivation.

How to run (from the repository root; CTFD_PATH is a CTFd 3.8.7 checkout with its venv):

    CTFD_PATH=/work/ctfd /work/ctfd/.venv/bin/python -m pytest -p no:cacheprovider -q tests/ctfd

The template rules must be exactly src/flag.c's and the ports rules src/ops.c's: the cases
below are the ones tests/unit/test_flag.c pins for the C code, with the same messages.
"""

import os

import pytest

if not os.environ.get("CTFD_PATH"):
    pytest.skip("CTFD_PATH is not set (a CTFd 3.8.7 checkout with its venv)", allow_module_level=True)

import decimal  # noqa: E402
import math  # noqa: E402

from CTFd.plugins.docker_challenges import flagcheck, validate  # noqa: E402
from CTFd.plugins.docker_challenges.validate import SettingError  # noqa: E402

LOG2_62 = math.log2(62)
LOG2_36 = math.log2(36)


# ---- key derivation -------------------------------------------------------------------


def test_key_derivation_vectors():
    mac = flagcheck.mac_key_from_master(bytes(range(32)))
    assert mac.hex() == "c08fda43e947a644ca8a2f23ac181cb49fb70c838e43948e95579e581ba1b6ee"
    assert (
        flagcheck.digest(mac, "CTF{test}").hex()
        == "ddbe61c56da9ceddd2a3b30e55140a093061f9bd92c787b42aa660f502692d70"
    )


def test_key_file_read_once_and_bad_files(tmp_path, monkeypatch, caplog):
    good = tmp_path / "good.key"
    good.write_text(bytes(range(32)).hex() + "\n")
    monkeypatch.setenv(flagcheck.KEY_FILE_ENV, str(good))
    first = flagcheck.mac_key()
    assert first.hex().startswith("c08fda43")
    good.write_text("00" * 32)  # read once: a later change is not seen
    assert flagcheck.mac_key() == first

    for name, content in (("short.key", "abcd"), ("text.key", "z" * 64)):
        path = tmp_path / name
        path.write_text(content)
        monkeypatch.setenv(flagcheck.KEY_FILE_ENV, str(path))
        caplog.clear()
        assert flagcheck.mac_key() is None
        assert flagcheck.mac_key() is None
        errors = [r for r in caplog.records if "flag key file" in r.getMessage()]
        assert len(errors) == 1, "logged once"
        assert content not in errors[0].getMessage()

    monkeypatch.setenv(flagcheck.KEY_FILE_ENV, str(tmp_path / "missing.key"))
    assert flagcheck.mac_key() is None


def test_grace_seconds(monkeypatch):
    monkeypatch.delenv(flagcheck.GRACE_ENV, raising=False)
    assert flagcheck.grace_seconds() == 0
    for value, want in (("600", 600), ("-5", 0), ("abc", 0), ("", 0)):
        monkeypatch.setenv(flagcheck.GRACE_ENV, value)
        assert flagcheck.grace_seconds() == want


# ---- flag templates (tests/unit/test_flag.c's cases) ----------------------------------

GOOD = [
    ("<hex:16>", 64),
    ("CTF{<hex:32>}", 128),
    ("<alnum:11>", 11 * LOG2_62),
    ("<lower:13>", 13 * LOG2_36),
    ("flag{<lower:8>_<alnum:8>_<hex:4>}", 8 * LOG2_36 + 8 * LOG2_62 + 16),
    ("{{7*7}}%s%n$x\\n<hex:16>", 64),
    ("CTF <hex:8> and <hex:8> ", 64),
    ("<hex:128><hex:127>", 1020),
    ("<alnum:128>", 128 * LOG2_62),
]

BAD = [
    ("CTF{<hex:15>}", "flag template: only 60 random bits; at least 64 are required (e.g. <hex:16>)"),
    (
        "CTF{<py:4>}",
        "flag template: unknown placeholder 'py' at position 4; use <hex:N>, <alnum:N> or <lower:N>",
    ),
    ("CTF{{7*7}}", "flag template: only 0 random bits; at least 64 are required (e.g. <hex:16>)"),
    ("<alnum:10>", "flag template: only 59.54 random bits; at least 64 are required (e.g. <hex:16>)"),
    ("", "flag template: empty; use e.g. CTF{<hex:32>}"),
    ("<", "flag template: unclosed '<' at position 0; a placeholder ends with '>' and '<' cannot be a literal"),
    ("CTF{<hex:32}", "flag template: unclosed '<' at position 4; a placeholder ends with '>' and '<' cannot be a literal"),
    ("<hex:16<hex:16>", "flag template: unclosed '<' at position 0; a placeholder ends with '>' and '<' cannot be a literal"),
    ("<hex:16>>", "flag template: '>' at position 8 is outside a placeholder; '<' and '>' cannot be literals"),
    ("a>b<hex:16>", "flag template: '>' at position 1 is outside a placeholder; '<' and '>' cannot be literals"),
    ("<hex:0>", "flag template: length '0' at position 0 must be a number from 1 to 128"),
    ("<hex:129>", "flag template: length '129' at position 0 must be a number from 1 to 128"),
    ("<hex:016>", "flag template: length '016' at position 0 must be a number from 1 to 128"),
    ("<hex:>", "flag template: length '' at position 0 must be a number from 1 to 128"),
    ("<hex:16x>", "flag template: length '16x' at position 0 must be a number from 1 to 128"),
    ("<hex:1000>", "flag template: length '1000' at position 0 must be a number from 1 to 128"),
    ("<hex:-16>", "flag template: length '-16' at position 0 must be a number from 1 to 128"),
    ("<hex>", "flag template: placeholder at position 0 has no ':N' length (e.g. <hex:16>)"),
    ("<HEX:16>", "flag template: unknown placeholder 'HEX' at position 0; use <hex:N>, <alnum:N> or <lower:N>"),
    ("x" * 256, "flag template: 256 bytes; at most 255 are allowed"),
    ("<hex:128><hex:128>", "flag template: a flag could be 256 characters; at most 255 are allowed"),
    ("a\tb<hex:16>", "flag template: byte 0x09 at position 1 is not printable ASCII"),
    ("\u00e9<hex:16>", "flag template: byte 0xc3 at position 0 is not printable ASCII"),
    ("<hex:16>\x7f", "flag template: byte 0x7f at position 8 is not printable ASCII"),
    ("<hex:16>\x00", "flag template: byte 0x00 at position 8 is not printable ASCII"),
]


@pytest.mark.parametrize("template,bits", GOOD)
def test_template_accepted(template, bits):
    assert validate.check_flag_template(template) == pytest.approx(bits, abs=1e-9)


@pytest.mark.parametrize("template,message", BAD)
def test_template_refused_with_the_c_message(template, message):
    with pytest.raises(SettingError) as info:
        validate.check_flag_template(template)
    assert str(info.value) == message


# ---- ports (src/ops.c) ----------------------------------------------------------------


@pytest.mark.parametrize(
    "spec,want",
    [
        ("80/http", "80/http"),
        (" 80/http , 1337/tcp ", "80/http,1337/tcp"),
        ("080/http", "80/http"),
        ("65535/tcp", "65535/tcp"),
        (",".join(f"{p}/tcp" for p in range(1, 9)), ",".join(f"{p}/tcp" for p in range(1, 9))),
    ],
)
def test_ports_accepted(spec, want):
    assert validate.format_ports(validate.parse_ports(spec)) == want


@pytest.mark.parametrize(
    "spec,fragment",
    [
        ("", "at least one port"),
        ("   ", "at least one port"),
        ("80/http,80/tcp", "port 80 is listed twice"),
        ("80/https", "'80/https' is not PORT/http or PORT/tcp"),
        ("80/HTTP", "is not PORT/http or PORT/tcp"),
        ("80", "is not PORT/http or PORT/tcp"),
        ("80 /http", "is not PORT/http or PORT/tcp"),
        ("+80/http", "is not PORT/http or PORT/tcp"),
        ("80/http 81/tcp", "is not PORT/http or PORT/tcp"),
        ("\t80/http", "is not PORT/http or PORT/tcp"),
        ("0/http", "from 1 to 65535"),
        ("65536/tcp", "from 1 to 65535"),
        ("80/http,", "ends with a comma"),
        ("80/http,,81/tcp", "is not PORT/http or PORT/tcp"),
        (",".join(f"{p}/tcp" for p in range(1, 10)), "at most 8 ports"),
    ],
)
def test_ports_refused(spec, fragment):
    with pytest.raises(SettingError) as info:
        validate.parse_ports(spec)
    assert fragment in str(info.value)
    assert str(info.value).startswith("Ports:")


# ---- the other fields -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["FLAG", "_", "CTF_FLAG_2", "A" * 64])
def test_flag_env_accepted(name):
    assert validate.check_flag_env(name) == name


@pytest.mark.parametrize("name", ["flag", "1FLAG", "FL-AG", "A" * 65, "FLAG ", " FLAG", "FLAG\n"])
def test_flag_env_refused(name):
    with pytest.raises(SettingError) as info:
        validate.check_flag_env(name)
    assert str(info.value).startswith("Flag variable:")


def test_flag_env_blank_means_flag():
    assert validate.check_flag_env("") == "FLAG"


def test_numbers():
    assert validate.optional_cpus("0.5") == decimal.Decimal("0.50")
    assert validate.optional_cpus(2) == decimal.Decimal("2.00")
    assert validate.optional_cpus("") is None
    for bad in ("0", "0.001", "1000", "abc", "nan", True, "-1"):
        with pytest.raises(SettingError):
            validate.optional_cpus(bad)
    assert validate.optional_int("512", "Memory", 6, 1048576) == 512
    assert validate.optional_int(" ", "Memory", 6, 1048576) is None
    for bad in ("5", "1.5", "abc", True, "-1", "99999999999"):
        with pytest.raises(SettingError):
            validate.optional_int(bad, "Memory", 6, 1048576)


def test_template_field_refuses_blanks_around():
    """Valid for the C application, but the flag could never be submitted (CTFd strips it)."""
    validate.check_flag_template("CTF <hex:8> and <hex:8> ")  # the C rule accepts it
    for template in ("CTF <hex:8> and <hex:8> ", " CTF{<hex:16>}"):
        with pytest.raises(SettingError, match="starts or ends with a blank"):
            validate.clean({"flag_template": template}, creating=False)
    assert validate.clean({"flag_template": "CTF{ <hex:16> }"}, creating=False)


def test_clean_requires_the_essentials_on_create_only():
    with pytest.raises(SettingError, match="Image: required"):
        validate.clean({"ports": "80/http", "flag_template": "<hex:16>"}, creating=True)
    out = validate.clean(
        {"image": "a:b", "ports": "80/http", "flag_template": "<hex:16>", "memory_mb": ""},
        creating=True,
    )
    assert out == {
        "image": "a:b",
        "ports": "80/http",
        "flag_template": "<hex:16>",
        "memory_mb": None,
        "flag_env": "FLAG",
    }
    assert validate.clean({"max_renewals": "0"}, creating=False) == {"max_renewals": 0}


@pytest.mark.parametrize(
    "value, want",
    [("", None), (None, None), ("0", 0), ("3", 3), (100, 100), (" 7 ", 7)],
)
def test_warm_pool_accepts_0_to_100_or_blank(value, want):
    assert validate.clean({"warm_pool": value}, creating=False) == {"warm_pool": want}


@pytest.mark.parametrize("value", ["-1", "101", "1e3", "two", True, 2.5])
def test_warm_pool_refuses_out_of_range(value):
    with pytest.raises(SettingError, match=r"^Warm pool: a whole number from 0 to 100 containers, or blank\.$"):
        validate.clean({"warm_pool": value}, creating=False)


def test_admin_form_script_checks_templates_like_the_server():
    """assets/admin.js checks a template as the organiser types; it must agree with
    validate.py (and so with src/flag.c) on every message."""
    import json
    import random
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (needed to run the admin form's script)")
    script = os.path.join(os.path.dirname(validate.__file__), "assets", "admin.js")
    cases = [t for t, _ in GOOD] + [t for t, _ in BAD]
    rnd = random.Random(1)
    alphabet = "<>:hexalnumower0123456789{}CTF _"
    cases += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 24))) for _ in range(1500)]
    cases += ["CTF{<hex:16>} ", " <alnum:12>"]
    program = (
        "const src = require('fs').readFileSync(process.argv[1], 'utf8');"
        "const body = src.slice(src.indexOf('function checkTemplate'), src.indexOf('function parsePorts'));"
        "const BITS = { hex: 4.0, alnum: 5.954196310386875, lower: 5.169925001442312 };"
        "const checkTemplate = eval('(' + body + ')');"
        "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "console.log(JSON.stringify(cases.map((t) => checkTemplate(t).error || null)));"
    )
    out = subprocess.run(
        [node, "-e", program, script], input=json.dumps(cases), capture_output=True, text=True, check=True
    )
    js = json.loads(out.stdout)
    for template, js_error in zip(cases, js):
        try:
            validate.check_template_field(template)
            py_error = None
        except SettingError as exc:
            py_error = str(exc)
        assert js_error == py_error, template


# ---- exposure and hardening (docs/exposure.md) ---------------------------------------


def test_exposure_settings_cleaned():
    out = validate.clean(
        {"cap_add": " chown, cap_setuid ", "connect": "openssl", "read_only": "1",
         "allow_internet": "", "route_owner_only": True},
        creating=False,
    )
    assert out == {"cap_add": "CHOWN,SETUID", "connect": "openssl", "read_only": True,
                   "allow_internet": None, "route_owner_only": True}
    assert validate.clean({"cap_add": "", "connect": ""}, creating=False) == {
        "cap_add": None, "connect": None}


@pytest.mark.parametrize("caps", ["SYS_ADMIN", "CHOWN,NET_ADMIN", "ALL", "cap_sys_ptrace",
                                  "SYS_MODULE", "privileged"])
def test_forbidden_capabilities_refused(caps):
    """The same allow-list as src/route.c (the app answers CAPABILITY_FORBIDDEN)."""
    with pytest.raises(SettingError, match="never given to a container"):
        validate.clean({"cap_add": caps}, creating=False)


def test_privileged_refused():
    for value in (True, "1", False, ""):
        with pytest.raises(SettingError, match="never run privileged"):
            validate.clean({"privileged": value}, creating=False)


def test_connect_and_flags_refuse_other_values():
    for data in ({"connect": "ssh"}, {"read_only": "maybe"}, {"allow_internet": 2},
                 {"route_owner_only": "sometimes"}):
        with pytest.raises(SettingError):
            validate.clean(data, creating=False)


def test_caps_allow_list_matches_the_c_application():
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "..", "src", "route.c")) as fh:
        text = fh.read()
    block = text[text.index("caps_allowed[] = {"):]
    block = block[:block.index("};")]
    import re

    assert tuple(re.findall(r'"([A-Z_]+)"', block)) == validate.CAPS_ALLOWED


# ---- swarm placement: src/placement.c's grammar (tests/unit/test_placement.c's cases) --


@pytest.mark.parametrize(
    "value, want",
    [
        ("", None),
        ("   ", None),
        ("node.labels.zone==a", "node.labels.zone==a"),
        (" node.labels.zone == a , node.role!=manager", "node.labels.zone==a,node.role!=manager"),
        ("engine.labels.gpu==yes,node.platform.arch==x86_64", "engine.labels.gpu==yes,node.platform.arch==x86_64"),
        ("node.labels.ctfd-containers.pool==web_1", "node.labels.ctfd-containers.pool==web_1"),
    ],
)
def test_placement_accepted(value, want):
    assert validate.optional_placement(value) == want


@pytest.mark.parametrize(
    "value",
    [
        "a==1",
        "node.labels.==a",
        "node.labels.zone=a",
        "node.labels.zone==",
        "node.labels.zone==a b",
        "node.labels.zone==a; rm -rf /",
        "node.labels.zone==a,",
        ",node.labels.zone==a",
        "node.labels.zé==a",
        ",".join(["node.role==worker"] * 9),
        "x" * 256,
    ],
)
def test_placement_refused(value):
    with pytest.raises(SettingError):
        validate.optional_placement(value)


def test_clean_keeps_placement():
    out = validate.clean({"placement": " node.labels.zone == b "}, creating=False)
    assert out == {"placement": "node.labels.zone==b"}
