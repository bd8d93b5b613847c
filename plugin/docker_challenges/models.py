"""The `docker` challenge: CTFd's polymorphic subtype table `docker_challenge`.

Its columns are the contract with the C application (docs/schema.md, "docker_challenge: the
contract with the plugin"), which reads them at every start, revert, extend and status. On
SQLite CTFd creates the table from this model (`create_all`); on MariaDB, MySQL and PostgreSQL
the plugin's migration (migrations/) does, with the same columns. Keep both in step.
"""

from CTFd.models import Challenges, db


class DockerChallenge(Challenges):
    __tablename__ = "docker_challenge"
    __mapper_args__ = {"polymorphic_identity": "docker"}
    id = db.Column(
        db.Integer,
        db.ForeignKey("challenges.id", ondelete="CASCADE", name="docker_challenge_ibfk_1"),
        primary_key=True,
        autoincrement=False,
    )
    #: the image to run; must already be on the engine (the app never pulls)
    image = db.Column(db.String(255), nullable=False)
    #: comma-separated PORT/PROTO, PROTO http or tcp, e.g. "80/http,1337/tcp"
    ports = db.Column(db.String(255), nullable=False)
    #: e.g. "CTF{<hex:32>}" (syntax in src/flag.c; checked by validate.check_flag_template)
    flag_template = db.Column(db.String(255), nullable=False)
    #: the environment variable the container gets its flag in
    flag_env = db.Column(db.String(64), nullable=False, default="FLAG", server_default="FLAG")
    #: NULL: the application's defaults (default_memory_mb, default_cpus, timeout_seconds,
    #: max_renewals, backend)
    memory_mb = db.Column(db.Integer, nullable=True)
    cpus = db.Column(db.Numeric(5, 2), nullable=True)
    lifetime_seconds = db.Column(db.Integer, nullable=True)
    max_renewals = db.Column(db.Integer, nullable=True)
    backend = db.Column(db.String(16), nullable=True)
    #: warm pool: containers the app keeps started ahead for this challenge (NULL/0: none)
    warm_pool = db.Column(db.Integer, nullable=True)
    #: exposure and hardening (docs/exposure.md), all nullable; NULL means off / the app's:
    #: only the owning account may open the container's site (NAME.route_domain)
    route_owner_only = db.Column(db.Boolean, nullable=True)
    #: how players are told to connect to tcp ports: nc (NULL), openssl or pwntools
    connect = db.Column(db.String(16), nullable=True)
    #: outbound traffic to the internet (never to the host or private ranges)
    allow_internet = db.Column(db.Boolean, nullable=True)
    #: capabilities kept (comma-separated, from the allow-list); NULL: the app's cap_add
    cap_add = db.Column(db.String(255), nullable=True)
    #: read-only root file system (with a small writable /tmp)
    read_only = db.Column(db.Boolean, nullable=True)
    #: swarm placement constraints, e.g. "node.labels.zone==a" (src/placement.h)
    placement = db.Column(db.String(255), nullable=True)

    #: the columns above besides id, in table order
    SETTINGS = (
        "image",
        "ports",
        "flag_template",
        "flag_env",
        "memory_mb",
        "cpus",
        "lifetime_seconds",
        "max_renewals",
        "backend",
        "warm_pool",
        "route_owner_only",
        "connect",
        "allow_internet",
        "cap_add",
        "read_only",
        "placement",
    )
