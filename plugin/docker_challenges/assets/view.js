// Player view of a `docker` challenge: Start / Extend / Revert / Stop of the team's own
// instance, its connection info with copy buttons and a live countdown. Loaded by the core
// theme on every open of the challenge (and, harmlessly, on the admin "new challenge" page).
(function () {
  // This script is loaded again on every open: stop the countdown of the previous load.
  if (window.__dockerChallengeTimer) clearInterval(window.__dockerChallengeTimer);
  const internal = CTFd._internal.challenge;
  internal.data = undefined;
  internal.renderer = null; // TODO: remove with CTFd 4.0, like the stock view.js
  internal.render = null;
  internal.preRender = function () {};
  internal.postRender = function () {
    // The view is injected by Alpine after this runs: wait for it.
    setTimeout(docker.refresh, 0);
  };
  internal.submit = function (preview) {
    const body = {
      challenge_id: parseInt(CTFd.lib.$("#challenge-id").val()),
      submission: CTFd.lib.$("#challenge-input").val(),
    };
    const params = preview ? "?preview=true" : "";
    return CTFd.fetch("/api/v1/challenges/attempt" + params, {
      method: "POST",
      body: JSON.stringify(body),
    }).then((r) => r.json());
  };

  const MESSAGES = {
    INSTANCE_LIMIT_REACHED: "You already run an instance of another challenge.",
    COOLDOWN: "Please wait a few seconds before starting or reverting again.",
    EXTENSION_TOO_SOON: "Extended too recently; try again later.",
    EXTENSION_LIMIT_REACHED: "No extensions left for this instance.",
    CAPACITY_REACHED: "All instances are in use right now. Try again in a few minutes.",
    SERVICE_UNAVAILABLE: "The instance service is unavailable. Try again later.",
    ENGINE_UNAVAILABLE: "The instance service is unavailable. Try again later.",
    INSTANCE_START_FAILED: "The instance failed to start. Try again, or tell the organisers.",
    INSTANCE_NOT_RUNNING: "The instance is not running.",
    INSTANCE_NOT_FOUND: "You have no running instance of this challenge.",
    CTF_NOT_RUNNING: "The CTF is not running.",
    CTF_PAUSED: "The CTF is paused.",
    NO_TEAM: "Join a team first.",
    RATE_LIMITED: "Too many requests; wait a minute and try again.",
  };

  const docker = {
    timer: null,
    instance: null,
    el(id) {
      return document.getElementById(id);
    },
    challengeId() {
      const box = docker.el("docker-instance");
      return box ? parseInt(box.dataset.challengeId) : null;
    },
    call(method, path, body) {
      const options = { method: method };
      if (body) options.body = JSON.stringify(body);
      return CTFd.fetch(path, options).then((r) =>
        r
          .json()
          .catch(() => ({}))
          .then((data) => {
            if (data.success !== undefined) return data;
            // Not our envelope: CTFd's own rate limiter (429) or a proxy error page.
            const code = r.status === 429 ? "RATE_LIMITED" : "SERVICE_UNAVAILABLE";
            return { success: false, error: { code: code, message: data.message || "" } };
          })
      );
    },
    refresh() {
      const id = docker.challengeId();
      if (id === null) return;
      docker.call("GET", "/api/v1/containers?challenge_id=" + id).then((r) => docker.showFor(id, r));
    },
    act(method, path, extra, busyText) {
      const id = docker.challengeId();
      docker.busy(busyText);
      const body = Object.assign({ challenge_id: id }, extra || {});
      return docker.call(method, path, body).then((r) => docker.showFor(id, r));
    },
    showFor(id, response) {
      // An answer for a challenge whose window has since been closed (or replaced) is dropped.
      if (docker.challengeId() === id) docker.show(response);
    },
    start() {
      return docker.act("POST", "/api/v1/containers", null, "Starting your instance…");
    },
    extend() {
      return docker.act("PATCH", "/api/v1/containers", null, "Extending…");
    },
    revert() {
      return docker.act("POST", "/api/v1/containers/revert", null, "Reverting to a fresh instance…");
    },
    stop(instanceId) {
      const extra = instanceId ? { instance_id: instanceId } : null;
      return docker.act("DELETE", "/api/v1/containers", extra, "Stopping…").then(() => {
        if (instanceId) docker.refresh();
      });
    },
    busy(text) {
      docker.message("", null);
      docker.el("docker-status").textContent = text;
      ["docker-start", "docker-extend", "docker-revert", "docker-stop"].forEach((b) => {
        const button = docker.el(b);
        if (button) button.disabled = true;
      });
    },
    show(response) {
      if (!docker.el("docker-instance")) return; // the modal was closed
      ["docker-start", "docker-extend", "docker-revert", "docker-stop"].forEach((b) => (docker.el(b).disabled = false));
      if (!response.success) {
        docker.error(response.error || {});
        return;
      }
      const instance = response.data.instance;
      docker.instance = instance && ["starting", "running"].includes(instance.state) ? instance : null;
      docker.render();
    },
    error(error) {
      const code = error.code || "SERVICE_UNAVAILABLE";
      const text = MESSAGES[code] || error.message || code;
      const running = (error.details && error.details.instances) || [];
      docker.message(text, "warning", running[0]);
      if (code === "SERVICE_UNAVAILABLE" || code === "ENGINE_UNAVAILABLE") {
        docker.el("docker-status").textContent = "Unavailable";
      } else {
        docker.render();
      }
    },
    message(text, kind, runningInstance) {
      const box = docker.el("docker-message");
      if (!box) return;
      box.className = "alert" + (kind ? " alert-" + kind : " d-none");
      box.textContent = text;
      if (runningInstance) {
        const name = runningInstance.challenge_name || "another challenge";
        box.textContent = text + " It runs " + name + ". ";
        const button = document.createElement("button");
        button.className = "btn btn-sm btn-outline-danger ms-2";
        button.id = "docker-stop-other";
        button.textContent = "Stop it";
        button.onclick = () => docker.stop(runningInstance.id);
        box.appendChild(button);
      }
    },
    render() {
      const instance = docker.instance;
      docker.el("docker-start").classList.toggle("d-none", !!instance);
      ["docker-extend", "docker-revert", "docker-stop"].forEach((b) => docker.el(b).classList.toggle("d-none", !instance));
      const list = docker.el("docker-connection");
      list.replaceChildren();
      if (!instance) {
        docker.el("docker-status").textContent = "No instance running.";
        docker.el("docker-timer").textContent = "";
        clearInterval(docker.timer);
        return;
      }
      docker.el("docker-status").textContent = instance.state === "running" ? "Running" : "Starting…";
      instance.connection.forEach((c) => list.appendChild(docker.connectionLine(c)));
      docker.el("docker-extend").disabled = instance.extensions_left <= 0;
      docker.countdown(instance);
    },
    connectionLine(c) {
      // One exposed port: the URL or command, other commands that work as well, and a hint
      // (e.g. that a tcp-tls port needs openssl/ncat --ssl, not plain nc).
      const item = document.createElement("li");
      item.className = "mb-2";
      item.appendChild(docker.copyable(c.url || c.command || c.host + ":" + c.port, !!c.url, "docker-connection-text"));
      (c.alternatives || []).forEach((alt) => item.appendChild(docker.copyable(alt, false, "docker-connection-alt small")));
      if (c.hint) {
        const hint = document.createElement("small");
        hint.className = "text-muted d-block docker-hint";
        hint.textContent = c.hint;
        item.appendChild(hint);
      }
      return item;
    },
    copyable(text, isUrl, className) {
      const row = document.createElement("div");
      row.className = "d-flex align-items-center gap-2 mb-1";
      const code = document.createElement(isUrl ? "a" : "code");
      code.className = className;
      code.textContent = text;
      if (isUrl) {
        code.href = text;
        code.target = "_blank";
        code.rel = "noopener";
      }
      const copy = document.createElement("button");
      copy.type = "button";
      copy.className = "btn btn-sm btn-outline-secondary docker-copy";
      copy.textContent = "Copy";
      copy.onclick = () => {
        if (navigator.clipboard) navigator.clipboard.writeText(text);
        copy.textContent = "Copied";
      };
      row.append(code, copy);
      return row;
    },
    countdown(instance) {
      clearInterval(docker.timer);
      const ends = Date.now() + instance.remaining_seconds * 1000;
      const tick = () => {
        const timer = docker.el("docker-timer");
        if (!timer) return clearInterval(docker.timer);
        const left = Math.max(0, Math.round((ends - Date.now()) / 1000));
        const m = Math.floor(left / 60);
        const s = String(left % 60).padStart(2, "0");
        timer.textContent =
          "Time left: " + m + ":" + s + " · extensions left: " + instance.extensions_left;
        if (left === 0) {
          clearInterval(docker.timer);
          setTimeout(docker.refresh, 2000);
        }
      };
      tick();
      docker.timer = window.__dockerChallengeTimer = setInterval(tick, 1000);
    },
  };
  internal.docker = docker;
})();
