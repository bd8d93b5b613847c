"""The `docker` challenge: a CTFd challenge plus what the instancer service needs to run it.

Columns carry a `docker_` prefix so they never clash with `Challenges` columns (CTFd 3.8.1
added initial/minimum/decay/function to the base table; the dynamic plugin had to rename).
"""

from CTFd.models import Challenges, db


class DockerChallenge(Challenges):
    __tablename__ = "docker_challenge"
    __mapper_args__ = {"polymorphic_identity": "docker"}
    id = db.Column(db.Integer, db.ForeignKey("challenges.id", ondelete="CASCADE"), primary_key=True)
    docker_image = db.Column(db.String(255), nullable=False, default="")
    #: exposed ports, "8080/http, 9000/tcp"
    docker_ports = db.Column(db.String(255), nullable=False, default="")
    docker_flag_template = db.Column(db.String(256), nullable=False, default="flag{{{hex:32}}}")
    docker_flag_env = db.Column(db.String(128), nullable=False, default="FLAG")
    docker_flag_file = db.Column(db.String(255), nullable=False, default="")
    docker_lifetime = db.Column(db.Integer, nullable=False, default=3600)
    docker_extension = db.Column(db.Integer, nullable=False, default=3600)
    docker_max_extensions = db.Column(db.Integer, nullable=False, default=5)
    docker_max_remaining = db.Column(db.Integer, nullable=False, default=7200)
    docker_memory_mib = db.Column(db.Integer, nullable=False, default=256)
    docker_cpus = db.Column(db.Float, nullable=False, default=0.5)
    docker_pids = db.Column(db.Integer, nullable=False, default=256)
    #: live instances of this challenge at most (0: only the service's global capacity)
    docker_capacity = db.Column(db.Integer, nullable=False, default=0)
    #: a JSON object merged over the spec the fields above make (egress, pool, placement,
    #: several containers...); "" or NULL for none. Added after the first release: schema.py
    #: adds it to tables made before, where old rows hold NULL (nullable, so that one ALTER
    #: works on SQLite, PostgreSQL and MySQL alike: MySQL allows no literal default on TEXT).
    docker_spec_extra = db.Column(db.Text, nullable=True, default="")
