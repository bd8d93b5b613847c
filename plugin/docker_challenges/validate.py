"""Checks of the docker challenge settings, exactly as the C application applies them.

Pure Python (no CTFd import), so the rules can be unit-tested on their own:

- `check_flag_template` is src/flag.c's `flag_template_check`: the same syntax, the same
  order of checks and the same messages (with the 0-based byte position).
- `parse_ports` is src/ops.c's `ops_parse_ports` with BACKEND_MAX_PORTS (8).
- `check_flag_env` is the variable-name rule of the create/update forms.

Each raises `SettingError` with a sentence an organiser can act on.
"""

import decimal
import re

FLAG_TEMPLATE_MAX_LEN = 255  # src/flag.h
FLAG_MAX_LEN = 255
FLAG_MIN_BITS = 64
PLACEHOLDER_MAX_N = 128
MAX_PORTS = 8  # src/backend.h BACKEND_MAX_PORTS
PROTOCOLS = ("http", "tcp")
BACKENDS = ("docker", "swarm", "whale")
WARM_POOL_MAX = 100  # per challenge; the app's warm_pool_max_total caps all of them

# name -> bits per character, written out exactly as src/flag.c does (no rounding doubt)
ALPHABETS = {
    "hex": 4.0,
    "alnum": 5.954196310386875,
    "lower": 5.169925001442312,
}

FLAG_ENV_RE = re.compile(r"[A-Z_][A-Z0-9_]{0,63}")


class SettingError(ValueError):
    """A setting an organiser gave is not acceptable; str() says why."""


# ---- flag templates (src/flag.c) ------------------------------------------------


def _parse_count(digits):
    """N: 1 to 3 digits, no leading zero, 1..128; None when not."""
    if not 1 <= len(digits) <= 3 or digits[:1] == b"0":
        return None
    if not all(0x30 <= c <= 0x39 for c in digits):
        return None
    n = int(digits)
    return n if n <= PLACEHOLDER_MAX_N else None


def _placeholder(t, p):
    """(bits per char, N, bytes consumed) of the placeholder whose '<' is at t[p]."""
    end = p + 1
    while end < len(t) and t[end] not in b"<>":
        end += 1
    if end >= len(t) or t[end] != ord(">"):
        raise SettingError(
            f"flag template: unclosed '<' at position {p}; a placeholder "
            "ends with '>' and '<' cannot be a literal"
        )
    body = t[p + 1 : end]
    colon = body.find(b":")
    name = body if colon < 0 else body[:colon]
    if name.decode("ascii") not in ALPHABETS:
        shown = name[:32].decode("ascii")
        raise SettingError(
            f"flag template: unknown placeholder '{shown}' at position {p}; "
            "use <hex:N>, <alnum:N> or <lower:N>"
        )
    name = name.decode("ascii")
    if colon < 0:
        raise SettingError(
            f"flag template: placeholder at position {p} has no ':N' length (e.g. <{name}:16>)"
        )
    digits = body[colon + 1 :]
    n = _parse_count(digits)
    if n is None:
        shown = digits[:16].decode("ascii")
        raise SettingError(
            f"flag template: length '{shown}' at position {p} must be a number from 1 to 128"
        )
    return ALPHABETS[name], n, end + 1 - p


def check_flag_template(template):
    """Check a flag template the way the C application does; returns its random bits.

    Raises SettingError with the C application's message (and the byte position)."""
    if template is None:
        raise SettingError("flag template: missing")
    t = template.encode("utf-8", "surrogatepass") if isinstance(template, str) else bytes(template)
    if len(t) == 0:
        raise SettingError("flag template: empty; use e.g. CTF{<hex:32>}")
    if len(t) > FLAG_TEMPLATE_MAX_LEN:
        raise SettingError(
            f"flag template: {len(t)} bytes; at most {FLAG_TEMPLATE_MAX_LEN} are allowed"
        )
    for i, c in enumerate(t):
        if c < 0x20 or c > 0x7E:
            raise SettingError(
                f"flag template: byte 0x{c:02x} at position {i} is not printable ASCII"
            )
    pos = length = 0
    bits = 0.0
    while pos < len(t):
        c = t[pos]
        if c == ord(">"):
            raise SettingError(
                f"flag template: '>' at position {pos} is outside a placeholder; "
                "'<' and '>' cannot be literals"
            )
        if c == ord("<"):
            per_char, n, used = _placeholder(t, pos)
            length += n
            bits += n * per_char
        else:
            used = 0
            while pos + used < len(t) and t[pos + used] not in b"<>":
                used += 1
            length += used
        pos += used
    if length > FLAG_MAX_LEN:
        raise SettingError(
            f"flag template: a flag could be {length} characters; at most {FLAG_MAX_LEN} are allowed"
        )
    if bits < FLAG_MIN_BITS:
        # Truncated to two decimals, as the C code does, so 63.999 never reads "64".
        shown = "%g" % (int(bits * 100) / 100)
        raise SettingError(
            f"flag template: only {shown} random bits; at least {FLAG_MIN_BITS} are required "
            "(e.g. <hex:16>)"
        )
    return bits


# ---- ports (src/ops.c) ----------------------------------------------------------


def parse_ports(spec):
    """[(port, proto), ...] of a ports spec such as "80/http, 1337/tcp".

    The C application's rule: 1 to 8 comma-separated PORT/PROTO items, PORT 1-65535 in
    decimal, PROTO exactly `http` or `tcp`, blanks (spaces) allowed around items, each
    container port once."""
    if not isinstance(spec, str):
        raise SettingError("Ports: give a list such as 80/http or 80/http,1337/tcp.")
    s, items = spec, []

    def skip_blanks(j):
        while j < len(s) and s[j] == " ":
            j += 1
        return j

    i = skip_blanks(0)
    if i == len(s):
        raise SettingError("Ports: at least one port is required, e.g. 80/http.")
    while i < len(s):
        if len(items) >= MAX_PORTS:
            raise SettingError(f"Ports: at most {MAX_PORTS} ports are allowed.")
        comma = s.find(",", i)
        shown = s[i : len(s) if comma < 0 else comma].strip()[:40]
        j = i
        while j < len(s) and "0" <= s[j] <= "9":
            j += 1
        proto = end = None
        if j > i and s.startswith("/", j):
            for name in PROTOCOLS:
                if s.startswith(name, j + 1):
                    proto, end = name, j + 1 + len(name)
                    break
        k = skip_blanks(end) if proto else None
        if proto is None or (k < len(s) and s[k] != ","):
            raise SettingError(
                f"Ports: '{shown}' is not PORT/http or PORT/tcp (e.g. 80/http, 1337/tcp)."
            )
        port = int(s[i:j])
        if not 1 <= port <= 65535:
            raise SettingError(f"Ports: '{shown}': the port must be from 1 to 65535.")
        if any(port == p for p, _ in items):
            raise SettingError(f"Ports: port {port} is listed twice; list each container port once.")
        items.append((port, proto))
        i = k
        if i < len(s):  # s[i] is a comma
            i = skip_blanks(i + 1)
            if i == len(s):
                raise SettingError("Ports: the list ends with a comma; remove it or add a port.")
    return items


def format_ports(items):
    return ",".join(f"{port}/{proto}" for port, proto in items)


# ---- the other settings ---------------------------------------------------------


def check_flag_env(name):
    """The environment variable the flag goes in: [A-Z_][A-Z0-9_]{0,63}; empty means FLAG."""
    if name is None or name == "":
        return "FLAG"
    if not isinstance(name, str) or not FLAG_ENV_RE.fullmatch(name):
        raise SettingError(
            "Flag variable: use capital letters, digits and _ (not starting with a digit), "
            "at most 64 characters, e.g. FLAG."
        )
    return name


def _text(value, label):
    if not isinstance(value, str):
        raise SettingError(f"{label}: text is required.")
    return value


def _blank(value):
    return value is None or (isinstance(value, str) and value.strip() == "")


def optional_int(value, label, low, high, unit=""):
    """An integer from low to high, or None when left blank (the application's default)."""
    if _blank(value):
        return None
    if isinstance(value, bool):
        raise SettingError(f"{label}: a whole number from {low} to {high}{unit}, or blank.")
    if isinstance(value, int):
        n = value
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    elif isinstance(value, str) and re.fullmatch(r"\s*[0-9]{1,10}\s*", value):
        n = int(value)
    else:
        raise SettingError(f"{label}: a whole number from {low} to {high}{unit}, or blank.")
    if not low <= n <= high:
        raise SettingError(f"{label}: a whole number from {low} to {high}{unit}, or blank.")
    return n


def optional_cpus(value):
    """CPUs: 0.01 to 999.99 with at most two decimals (DECIMAL(5,2)), or None when blank."""
    if _blank(value):
        return None
    message = "CPUs: a number from 0.01 to 999.99 with at most two decimals (e.g. 0.5), or blank."
    if isinstance(value, bool) or not isinstance(value, (str, int, float, decimal.Decimal)):
        raise SettingError(message)
    try:
        d = decimal.Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise SettingError(message) from None
    if not d.is_finite() or not decimal.Decimal("0.01") <= d <= decimal.Decimal("999.99"):
        raise SettingError(message)
    rounded = d.quantize(decimal.Decimal("0.01"))
    if rounded != d:  # 0.125 would be stored as 0.13 (or refused): say so instead
        raise SettingError(message)
    return rounded


def optional_backend(value):
    if _blank(value):
        return None
    if value not in BACKENDS:
        raise SettingError("Backend: docker, swarm or whale, or blank for the application's.")
    return value


# src/placement.c's grammar: KEY==VALUE or KEY!=VALUE, comma-separated, at most 8
PLACEMENT_KEYS = ("node.role", "node.hostname", "node.id", "node.platform.os", "node.platform.arch")
PLACEMENT_PREFIXES = ("node.labels.", "engine.labels.")
_PLACEMENT_WORD = re.compile(r"[A-Za-z0-9._-]{1,100}")


def optional_placement(value):
    """Swarm placement constraints, checked exactly as src/placement.c checks them."""
    if _blank(value):
        return None
    message = ("Placement: constraints such as node.labels.zone==a (KEY==VALUE or KEY!=VALUE, "
               "comma-separated, at most 8; KEY node.labels.NAME, engine.labels.NAME, "
               "node.role, node.hostname, node.id, node.platform.os or node.platform.arch)")
    if not isinstance(value, str) or len(value) > 255:
        raise SettingError(message)
    items = value.split(",")
    if len(items) > 8:
        raise SettingError(message)
    out = []
    for item in items:
        item = item.strip(" \t")
        found = [i for i in (item.find("=="), item.find("!=")) if i >= 0]
        if not found:
            raise SettingError(message)
        first = min(found)
        op = item[first:first + 2]
        key, val = item[:first].rstrip(" \t"), item[first + 2:].lstrip(" \t")
        key_ok = key in PLACEMENT_KEYS or any(
            key.startswith(p) and _PLACEMENT_WORD.fullmatch(key[len(p):]) for p in PLACEMENT_PREFIXES)
        if not key_ok or not _PLACEMENT_WORD.fullmatch(val):
            raise SettingError(message)
        out.append(f"{key}{op}{val}")
    return ",".join(out)


def required_text(value, label, max_len=255):
    if not isinstance(value, str) or value.strip() == "":
        raise SettingError(f"{label}: required.")
    value = value.strip()
    if len(value.encode("utf-8", "surrogatepass")) > max_len:
        raise SettingError(f"{label}: at most {max_len} characters.")
    return value


def check_image(value):
    value = required_text(value, "Image")
    if any(c.isspace() or ord(c) < 0x20 or ord(c) > 0x7E for c in value):
        raise SettingError("Image: a name such as registry/name:tag, without blanks.")
    return value


def check_template_field(value):
    """The form's flag template: src/flag.c's check, then one rule of the plugin's own.

    CTFd strips blanks around every submission, so a flag starting or ending with a blank
    could never be submitted: such a template (valid for the C application) is refused."""
    template = _text(value, "Flag template")
    check_flag_template(template)
    if template != template.strip(" "):
        raise SettingError(
            "flag template: starts or ends with a blank; CTFd strips blanks around a "
            "submission, so such a flag could never be submitted"
        )
    return template


# ---- exposure and hardening (docs/exposure.md) -----------------------------------

CONNECT_STYLES = ("nc", "openssl", "pwntools")
# src/route.c's allow-list: Docker's default capability set, nothing more.
CAPS_ALLOWED = (
    "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "SETPCAP",
    "NET_BIND_SERVICE", "NET_RAW", "SYS_CHROOT", "MKNOD", "AUDIT_WRITE", "SETFCAP",
)


def optional_flag(value, label):
    """Yes (True) or off (None): 1/0, true/false, on/off, yes/no, or blank."""
    if _blank(value) or value is False:
        return None
    if value is True:
        return True
    text = str(value).strip().lower()
    if text in ("1", "true", "on", "yes"):
        return True
    if text in ("0", "false", "off", "no"):
        return None
    raise SettingError(f"{label}: yes or no.")


def optional_connect(value):
    if _blank(value):
        return None
    if value not in CONNECT_STYLES:
        raise SettingError("Connect: nc, openssl or pwntools, or blank for nc.")
    return value


def optional_caps(value):
    """Capabilities kept: comma-separated names from the allow-list (CAP_ prefix and case free),
    or None when blank (the application's cap_add). The C application refuses the same names
    (CAPABILITY_FORBIDDEN)."""
    if _blank(value):
        return None
    if not isinstance(value, str):
        raise SettingError("Capabilities: comma-separated names such as CHOWN,SETUID, or blank.")
    names = []
    for item in value.split(","):
        name = item.strip().upper()
        if name == "":
            continue
        bare = name[4:] if name.startswith("CAP_") and len(name) > 4 else name
        if bare not in CAPS_ALLOWED:
            raise SettingError(
                f"Capabilities: '{item.strip()[:32]}' is never given to a container; "
                f"allowed: {', '.join(CAPS_ALLOWED)}."
            )
        names.append(bare)
    text = ",".join(names)
    if len(text) > 255:
        raise SettingError("Capabilities: at most 255 characters.")
    return text or None


def refuse_privileged(value):
    raise SettingError("Privileged: containers never run privileged; remove this setting.")


# column -> cleaner; the values the docker_challenge columns take
FIELDS = {
    "image": check_image,
    "ports": lambda v: format_ports(parse_ports(v)),
    "flag_template": lambda v: check_template_field(v),
    "flag_env": check_flag_env,
    "memory_mb": lambda v: optional_int(v, "Memory", 6, 1048576, " MiB"),
    "cpus": optional_cpus,
    "lifetime_seconds": lambda v: optional_int(v, "Lifetime", 1, 31536000, " seconds"),
    "max_renewals": lambda v: optional_int(v, "Renewals", 0, 10000),
    "backend": optional_backend,
    "warm_pool": lambda v: optional_int(v, "Warm pool", 0, WARM_POOL_MAX, " containers"),
    "route_owner_only": lambda v: optional_flag(v, "Owner only"),
    "connect": optional_connect,
    "allow_internet": lambda v: optional_flag(v, "Internet"),
    "cap_add": optional_caps,
    "read_only": lambda v: optional_flag(v, "Read-only root"),
    "placement": optional_placement,
}
REQUIRED = ("image", "ports", "flag_template")


def clean(data, creating):
    """The docker_challenge values among `data` (a form/JSON dict), checked and converted.

    Creating: image, ports and flag_template are required, flag_env defaults to FLAG.
    Updating: only the keys given are checked and returned."""
    out = {}
    if "privileged" in data:
        refuse_privileged(data["privileged"])
    if creating:
        for key in REQUIRED:
            if _blank(data.get(key)):
                label = {"image": "Image", "ports": "Ports", "flag_template": "Flag template"}[key]
                raise SettingError(f"{label}: required.")
    for key, cleaner in FIELDS.items():
        if key in data:
            out[key] = cleaner(data[key])
    if creating and "flag_env" not in out:
        out["flag_env"] = "FLAG"
    return out
