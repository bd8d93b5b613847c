// Player view of a `docker` challenge (CTFd 3.8 core theme, Alpine 3).
//
// Registers the Alpine component `dockerContainer` used by view.html. It talks to the
// container application through nginx with CTFd.fetch (which sends the session's CSRF nonce):
//   GET    /api/v1/container?challenge_id=N   status ({} when there is none)
//   POST   /api/v1/container {challenge_id}   start, or revert when one is live
//   PATCH  /api/v1/container?challenge_id=N   extend
//   DELETE /api/v1/container?challenge_id=N   stop
// Polling is bounded: every 5 s while the container is starting or stopping (at most 3
// minutes), and nothing at all once the challenge window is closed. The countdown runs
// locally from seconds_left.
//
// This script is loaded again on every opening of a challenge, and also by the admin pages
// (new challenge, preview), so it only defines things and must not fail there.
(function () {
  "use strict";

  const internal = CTFd._internal.challenge;
  internal.data = undefined;
  internal.renderer = null; // TODO: remove with CTFd 4.0, like the stock view.js
  internal.render = null;
  internal.preRender = function () {};
  internal.postRender = function () {};
  // The core theme submits through its Alpine component; this is for older themes.
  internal.submit = function (preview) {
    const body = {
      challenge_id: parseInt(CTFd.lib.$("#challenge-id").val(), 10),
      submission: CTFd.lib.$("#challenge-input").val(),
    };
    return CTFd.fetch("/api/v1/challenges/attempt" + (preview ? "?preview=true" : ""), {
      method: "POST",
      body: JSON.stringify(body),
    }).then((r) => r.json());
  };

  const POLL_MS = 5000;
  const MAX_POLLS = 36; // 3 minutes of "starting"/"stopping"

  // Every error code of docs/api.md (and the ones nginx answers), as a sentence for a player.
  const SENTENCES = {
    BAD_REQUEST: "The request was not understood. Reload the page and try again.",
    INVALID_JSON: "The request was not understood. Reload the page and try again.",
    INVALID_FIELD: "The request was not understood. Reload the page and try again.",
    CONFIRM_REQUIRED: "Confirm that every container should stop.",
    NOT_AUTHENTICATED: "Log in to CTFd first.",
    FORBIDDEN: "CTFd refused this request; your session may have expired. Reload the page and try again.",
    AUTH_UNAVAILABLE: "CTFd could not confirm who you are. Try again in a few seconds.",
    APP_UNAVAILABLE: "The container service is not answering. Try again in a few seconds.",
    USER_BANNED: "Your account is banned.",
    USER_HIDDEN: "Your account is hidden, so it cannot use containers. Ask the organisers.",
    TEAM_REQUIRED: "Join or create a team first.",
    TEAM_BANNED: "Your team is banned.",
    TEAM_HIDDEN: "Your team is hidden, so it cannot use containers. Ask the organisers.",
    EMAIL_UNVERIFIED: "Confirm your email address first.",
    ADMIN_REQUIRED: "Only admins may do this.",
    NONCE_INVALID: "This page is out of date. Reload it and try again.",
    CTF_NOT_STARTED: "The CTF has not started yet.",
    CTF_ENDED: "The CTF is over.",
    CTF_PAUSED: "The CTF is paused.",
    CHALLENGE_LOCKED: "This challenge is locked.",
    PREREQUISITES_UNMET: "Solve this challenge's prerequisites first.",
    CAPABILITY_FORBIDDEN: "This challenge asks for a privilege containers never get. Tell the organisers.",
    ROUTE_NOT_FOUND: "No running container answers at this name. Start it again.",
    NOT_FOUND: "The container service does not know this request. Reload the page.",
    CHALLENGE_NOT_FOUND: "This challenge has no container any more. Tell the organisers.",
    CONTAINER_NOT_FOUND: "There is no running container for this challenge.",
    METHOD_NOT_ALLOWED: "The container service refused this request. Reload the page and try again.",
    CONTAINER_LIMIT_REACHED: "You already run as many containers as allowed. Stop one of another challenge first.",
    RENEWAL_LIMIT_REACHED: "This container cannot be extended any more.",
    CONTAINER_BUSY: "The container is starting or stopping. Try again in a moment.",
    BODY_TOO_LARGE: "The request was too large. Reload the page and try again.",
    UNSUPPORTED_MEDIA_TYPE: "The request was not understood. Reload the page and try again.",
    COOLDOWN: "Please wait a little before starting, reverting or extending again.",
    INTERNAL_ERROR: "Something went wrong on the container service. Try again, or tell the organisers.",
    CHALLENGE_MISCONFIGURED: "This challenge is misconfigured. Tell the organisers.",
    IMAGE_MISSING: "This challenge's image is missing on the server. Tell the organisers.",
    START_FAILED: "Your container failed to start. Try again, and tell the organisers if it keeps failing.",
    CAPACITY_FULL: "All container slots are in use. Try again in a few minutes.",
    PORTS_EXHAUSTED: "No network port is free right now. Try again later.",
    ENGINE_UNAVAILABLE: "The container engine cannot be reached. Try again shortly.",
    DATABASE_UNAVAILABLE: "The database cannot be reached. Try again shortly.",
  };
  // Answers without our JSON envelope (a proxy's own error page), by HTTP status.
  const BY_STATUS = {
    401: "NOT_AUTHENTICATED",
    403: "FORBIDDEN",
    404: null, // the container routes are not set up on this site
    413: "BODY_TOO_LARGE",
    429: "COOLDOWN",
    500: "AUTH_UNAVAILABLE",
    502: "APP_UNAVAILABLE",
    503: "APP_UNAVAILABLE",
    504: "APP_UNAVAILABLE",
  };

  // 5400 -> "1 h 30 min", 1800 -> "30 min", 213 -> "3 min 33 s", 45 -> "45 s"
  function duration(seconds) {
    seconds = Math.max(0, Math.round(seconds));
    const h = Math.floor(seconds / 3600);
    const m = Math.floor((seconds % 3600) / 60);
    const s = seconds % 60;
    const parts = [];
    if (h) parts.push(h + " h");
    if (m) parts.push(m + " min");
    if (s && !h) parts.push(s + " s");
    return parts.length ? parts.join(" ") : "0 s";
  }

  function explain(status, body) {
    const code = body && typeof body.code === "string" ? body.code : BY_STATUS[status];
    let text = code && SENTENCES[code];
    if (!text) {
      if (body && typeof body.message === "string" && body.message) text = body.message;
      else if (status === 404) text = "Containers are not set up on this site. Tell the organisers.";
      else text = "The container service answered with an error (HTTP " + status + "). Try again.";
    }
    const retry = body && Number(body.retry_after);
    if (retry > 0) text += " You can try again in " + duration(retry) + ".";
    return text;
  }

  function storageKey(id) {
    return "docker-challenges-extend-" + id;
  }

  function dockerContainer() {
    return {
      challengeId: 0,
      container: null, // the app's container object, or null when there is none
      loading: true,
      busy: "", // what is being done, while a request runs
      error: "",
      notice: "",
      copied: -1,
      now: Date.now(),
      endsAt: 0,
      polls: 0,
      halted: false,
      _poll: null,
      _tick: null,
      _modal: null,
      _onHidden: null,
      _onShown: null,

      init() {
        this.challengeId = parseInt(this.$el.dataset.challengeId, 10);
        this._modal = this.$el.closest(".modal");
        if (this._modal) {
          this._onHidden = () => this.halt();
          this._onShown = () => {
            if (this.halted && this.$el.isConnected) {
              this.halted = false;
              this.refresh();
            }
          };
          this._modal.addEventListener("hidden.bs.modal", this._onHidden);
          this._modal.addEventListener("shown.bs.modal", this._onShown);
        }
        this.refresh();
      },

      destroy() {
        this.halt();
        if (this._modal) {
          this._modal.removeEventListener("hidden.bs.modal", this._onHidden);
          this._modal.removeEventListener("shown.bs.modal", this._onShown);
        }
      },

      // The window was closed (or the view replaced): no more requests or timers.
      halt() {
        this.halted = true;
        clearTimeout(this._poll);
        clearInterval(this._tick);
        this._poll = this._tick = null;
      },

      alive() {
        return !this.halted && this.$el.isConnected;
      },

      async call(method, body) {
        let path = "/api/v1/container";
        const options = { method: method };
        if (body) options.body = JSON.stringify(body);
        else path += "?challenge_id=" + encodeURIComponent(this.challengeId);
        let response;
        try {
          response = await CTFd.fetch(path, options);
        } catch (e) {
          return { ok: false, text: "The network request failed. Check your connection and try again." };
        }
        let json = null;
        try {
          json = await response.json();
        } catch (e) {
          json = null;
        }
        if (response.ok && json && json.success) return { ok: true, data: json.data };
        return { ok: false, status: response.status, code: json && json.code, text: explain(response.status, json) };
      },

      show(data) {
        const live = data && typeof data === "object" && data.id !== undefined ? data : null;
        this.container = live;
        clearTimeout(this._poll);
        clearInterval(this._tick);
        this._poll = this._tick = null;
        if (!live || !this.alive()) return;
        this.now = Date.now();
        this.endsAt = this.now + Math.max(0, Number(live.seconds_left) || 0) * 1000;
        if (live.state === "starting" || live.state === "stopping") {
          if (this.polls < MAX_POLLS) {
            this.polls += 1;
            this._poll = setTimeout(() => this.refresh(true), POLL_MS);
          }
        } else {
          this.polls = 0;
        }
        if (live.state === "running") {
          this._tick = setInterval(() => {
            if (!this.alive()) return this.halt();
            this.now = Date.now();
            if (this.now >= this.endsAt) {
              clearInterval(this._tick);
              this._tick = null;
              setTimeout(() => this.alive() && this.refresh(), 2000); // it has expired by now
            }
          }, 1000);
        }
      },

      async refresh(polling) {
        if (!polling) this.polls = 0;
        const r = await this.call("GET");
        this.loading = false;
        if (!this.alive()) return;
        if (r.ok) {
          this.show(r.data);
        } else if (!this.error) {
          this.error = r.text; // an action's own error, if any, says more
        }
      },

      async act(method, withBody, busyText, after) {
        if (this.busy) return;
        this.busy = busyText;
        this.error = this.notice = "";
        const before = this.container;
        const r = await this.call(method, withBody ? { challenge_id: this.challengeId } : null);
        this.busy = "";
        if (!this.alive()) return;
        if (r.ok) {
          this.show(r.data);
          if (after) after(before, this.container);
        } else {
          this.error = r.text;
          if (r.code !== "COOLDOWN") this.refresh(); // show what is true now
        }
      },

      start() {
        return this.act("POST", true, "Starting your container; this can take a few seconds…", (b, c) => {
          if (c) this.notice = "Your container is running.";
        });
      },
      revert() {
        if (!window.confirm("Replace your container with a fresh one? Everything in it is lost, and it gets a new flag.")) return;
        return this.act("POST", true, "Replacing your container with a fresh one…", (b, c) => {
          if (c) this.notice = "You have a fresh container, with a new flag.";
        });
      },
      extend() {
        return this.act("PATCH", false, "Extending…", (b, c) => {
          if (!b || !c) return;
          const added = Number(c.deadline) - Number(b.deadline);
          if (added > 0) {
            try {
              window.sessionStorage.setItem(storageKey(this.challengeId), String(added));
            } catch (e) {
              /* storage may be disabled */
            }
            this.notice = "Extended by " + duration(added) + ".";
          }
        });
      },
      stop() {
        if (!window.confirm("Stop your container? Everything in it is lost.")) return;
        return this.act("DELETE", false, "Stopping…", () => {
          this.notice = "Your container is stopped.";
        });
      },

      ready() {
        return !this.loading && !this.busy;
      },
      isRunning() {
        return !!this.container && this.container.state === "running";
      },
      canChange() {
        return this.ready() && this.isRunning();
      },
      canExtend() {
        return this.canChange() && Number(this.container.renewals_left) > 0;
      },
      ports() {
        return (this.container && Array.isArray(this.container.ports) && this.container.ports) || [];
      },
      // Other ways in the app offers for a port (docs/api.md: nc, openssl), besides `connection`.
      alternatives(p) {
        return [p.openssl, p.nc].filter((t) => typeof t === "string" && t && t !== p.connection);
      },
      isLink(text) {
        return typeof text === "string" && /^https?:\/\//.test(text);
      },
      secondsLeft() {
        return Math.max(0, Math.round((this.endsAt - this.now) / 1000));
      },
      clock() {
        const left = this.secondsLeft();
        const h = Math.floor(left / 3600);
        const m = String(Math.floor((left % 3600) / 60)).padStart(h ? 2 : 1, "0");
        const s = String(left % 60).padStart(2, "0");
        return (h ? h + ":" : "") + m + ":" + s;
      },
      renewalsText() {
        const n = this.container ? Number(this.container.renewals_left) : 0;
        return "· " + (n === 1 ? "1 extension left" : n + " extensions left");
      },
      extendLabel() {
        // How much an extend adds: the app's `extend_seconds` if it sends one, else what the
        // last extend of this challenge added (the container object does not say in advance).
        let added = this.container ? Number(this.container.extend_seconds) : 0;
        if (!(added > 0)) {
          try {
            added = Number(window.sessionStorage.getItem(storageKey(this.challengeId)));
          } catch (e) {
            added = 0;
          }
        }
        const n = this.container ? Number(this.container.renewals_left) : 0;
        return (added > 0 ? "Extend +" + duration(added) : "Extend") + " (" + n + " left)";
      },
      statusText() {
        if (this.busy) return this.busy;
        if (this.loading) return "Checking for your container…";
        const c = this.container;
        if (!c) return "No container is running. Start one to work on this challenge.";
        if (c.state === "starting") return "Your container is starting…";
        if (c.state === "stopping") return "Your container is stopping…";
        if (this.secondsLeft() === 0) return "Your container's time is up.";
        return "Your container is running at:";
      },

      copy(text, index) {
        const done = () => {
          this.copied = index;
          setTimeout(() => {
            if (this.copied === index) this.copied = -1;
          }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done, () => this.copyFallback(text, done));
        } else {
          this.copyFallback(text, done);
        }
      },
      copyFallback(text, done) {
        const area = document.createElement("textarea");
        area.value = text;
        area.setAttribute("readonly", "");
        area.style.position = "fixed";
        area.style.opacity = "0";
        this.$el.appendChild(area);
        area.select();
        try {
          if (document.execCommand("copy")) done();
        } catch (e) {
          /* nothing more to try: the text stays selectable on the page */
        }
        area.remove();
      },
    };
  }

  if (window.Alpine && typeof window.Alpine.data === "function") {
    window.Alpine.data("dockerContainer", dockerContainer);
  }
})();
