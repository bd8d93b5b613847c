// Admin create/update forms of a `docker` challenge (CTFd 3.8 admin theme).
//
// - The ports line becomes a list editor (PORT + http|tcp per row) that writes the line back,
//   so CTFd's own form serialisation sends `ports` as the C application reads it.
// - The flag template is checked as you type with the rules of src/flag.c (the server checks
//   again with the same rules and has the last word); an invalid one blocks the form's submit
//   with the reason shown at the field.
// Loaded once on the update page and on every choice of the type on the create page: each
// fieldset is set up once.
(function () {
  "use strict";

  const MAX_PORTS = 8;
  const BITS = { hex: 4.0, alnum: 5.954196310386875, lower: 5.169925001442312 };

  // Same checks, order and messages as src/flag.c (validate.check_flag_template), then the
  // plugin's blank rule; {bits, length} when valid, {error} when not.
  function checkTemplate(t) {
    const bytes = new TextEncoder().encode(t);
    if (bytes.length === 0) return { error: "flag template: empty; use e.g. CTF{<hex:32>}" };
    if (bytes.length > 255) return { error: "flag template: " + bytes.length + " bytes; at most 255 are allowed" };
    for (let i = 0; i < bytes.length; i++) {
      const c = bytes[i];
      if (c < 0x20 || c > 0x7e) {
        return { error: "flag template: byte 0x" + c.toString(16).padStart(2, "0") + " at position " + i + " is not printable ASCII" };
      }
    }
    let pos = 0, length = 0, bits = 0;
    while (pos < t.length) {
      if (t[pos] === ">") {
        return { error: "flag template: '>' at position " + pos + " is outside a placeholder; '<' and '>' cannot be literals" };
      }
      if (t[pos] === "<") {
        let end = pos + 1;
        while (end < t.length && t[end] !== "<" && t[end] !== ">") end++;
        if (end >= t.length || t[end] !== ">") {
          return { error: "flag template: unclosed '<' at position " + pos + "; a placeholder ends with '>' and '<' cannot be a literal" };
        }
        const body = t.slice(pos + 1, end);
        const colon = body.indexOf(":");
        const name = colon < 0 ? body : body.slice(0, colon);
        if (!Object.prototype.hasOwnProperty.call(BITS, name)) {
          return { error: "flag template: unknown placeholder '" + name.slice(0, 32) + "' at position " + pos + "; use <hex:N>, <alnum:N> or <lower:N>" };
        }
        if (colon < 0) {
          return { error: "flag template: placeholder at position " + pos + " has no ':N' length (e.g. <" + name + ":16>)" };
        }
        const digits = body.slice(colon + 1);
        if (!/^[1-9][0-9]{0,2}$/.test(digits) || Number(digits) > 128) {
          return { error: "flag template: length '" + digits.slice(0, 16) + "' at position " + pos + " must be a number from 1 to 128" };
        }
        length += Number(digits);
        bits += Number(digits) * BITS[name];
        pos = end + 1;
      } else {
        let end = pos;
        while (end < t.length && t[end] !== "<" && t[end] !== ">") end++;
        length += end - pos;
        pos = end;
      }
    }
    if (length > 255) return { error: "flag template: a flag could be " + length + " characters; at most 255 are allowed" };
    if (bits < 64) {
      const shown = Math.trunc(bits * 100) / 100;
      return { error: "flag template: only " + shown + " random bits; at least 64 are required (e.g. <hex:16>)" };
    }
    // The plugin's own rule (validate.check_template_field): CTFd strips submissions.
    if (t !== t.replace(/^ +| +$/g, "")) {
      return { error: "flag template: starts or ends with a blank; CTFd strips blanks around a submission, so such a flag could never be submitted" };
    }
    return { bits: bits, length: length };
  }

  function parsePorts(line) {
    return line
      .split(",")
      .map((item) => item.trim())
      .filter((item) => item !== "")
      .map((item) => {
        const m = /^([0-9]+)\/(http|tcp)$/.exec(item);
        return m ? { port: m[1], proto: m[2] } : { port: item.replace(/\/.*/, ""), proto: /tcp/.test(item) ? "tcp" : "http" };
      });
  }

  function element(tag, attrs, children) {
    const el = document.createElement(tag);
    Object.keys(attrs || {}).forEach((k) => {
      if (k === "text") el.textContent = attrs[k];
      else el.setAttribute(k, attrs[k]);
    });
    (children || []).forEach((c) => el.appendChild(c));
    return el;
  }

  function setupPorts(fieldset) {
    const line = fieldset.querySelector("input[name=ports]");
    const box = fieldset.querySelector(".docker-port-rows");
    const status = fieldset.querySelector(".docker-ports-status");
    if (!line || !box) return;
    line.type = "hidden"; // the rows below edit it
    let rows = parsePorts(line.value);
    if (rows.length === 0) rows = [{ port: "", proto: "http" }];

    function write() {
      line.value = rows
        .filter((r) => String(r.port).trim() !== "")
        .map((r) => String(r.port).trim() + "/" + r.proto)
        .join(",");
      const seen = {};
      let problem = "";
      rows.forEach((r, i) => {
        const p = String(r.port).trim();
        if (p === "") return;
        if (!/^[0-9]+$/.test(p) || Number(p) < 1 || Number(p) > 65535) problem = "Port " + (i + 1) + ": a number from 1 to 65535.";
        else if (seen[Number(p)]) problem = "Port " + Number(p) + " is listed twice; list each container port once.";
        seen[Number(p)] = true;
      });
      if (!problem && line.value === "") problem = "At least one port is required.";
      status.textContent = problem;
      // Keep the browser from submitting a list the server would refuse.
      const first = box.querySelector("input");
      if (first) first.setCustomValidity(problem);
    }

    function render() {
      box.replaceChildren();
      rows.forEach((r, i) => {
        const port = element("input", {
          type: "number", min: "1", max: "65535", step: "1", class: "form-control docker-port",
          placeholder: "port", "aria-label": "Container port " + (i + 1),
        });
        port.value = r.port;
        port.addEventListener("input", () => {
          r.port = port.value;
          write();
        });
        const proto = element("select", { class: "form-control custom-select docker-proto", "aria-label": "Protocol of port " + (i + 1) }, [
          element("option", { value: "http", text: "http (a link)" }),
          element("option", { value: "tcp", text: "tcp (nc host port)" }),
        ]);
        proto.value = r.proto;
        proto.addEventListener("change", () => {
          r.proto = proto.value;
          write();
        });
        const remove = element("button", { type: "button", class: "btn btn-outline-danger", title: "Remove this port", text: "Remove" });
        remove.disabled = rows.length === 1;
        remove.addEventListener("click", () => {
          rows.splice(i, 1);
          render();
        });
        box.appendChild(
          element("div", { class: "input-group mb-2 docker-port-row" }, [
            port,
            element("div", { class: "input-group-append" }, [proto, remove]),
          ])
        );
      });
      if (rows.length < MAX_PORTS) {
        const add = element("button", { type: "button", class: "btn btn-sm btn-outline-secondary docker-port-add", text: "Add a port" });
        add.addEventListener("click", () => {
          rows.push({ port: "", proto: "tcp" });
          render();
          const inputs = box.querySelectorAll("input.docker-port");
          inputs[inputs.length - 1].focus();
        });
        box.appendChild(add);
      }
      write();
    }
    render();
  }

  function setupTemplate(fieldset) {
    const input = fieldset.querySelector("input[name=flag_template]");
    const status = fieldset.querySelector(".docker-template-status");
    if (!input || !status) return;
    function check() {
      const r = checkTemplate(input.value);
      if (r.error) {
        status.className = "form-text docker-template-status text-danger";
        status.textContent = r.error;
        input.setCustomValidity(r.error);
      } else {
        status.className = "form-text docker-template-status text-muted";
        status.textContent = Math.floor(r.bits) + " random bits; flags of up to " + r.length + " characters.";
        input.setCustomValidity("");
      }
    }
    input.addEventListener("input", check);
    check();
  }

  function setupLifetime(fieldset) {
    const input = fieldset.querySelector("input[name=lifetime_seconds]");
    const hint = fieldset.querySelector(".docker-lifetime-hint");
    if (!input || !hint) return;
    function show() {
      const s = Number(input.value);
      if (!input.value || !(s > 0)) {
        hint.textContent = "";
        return;
      }
      const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
      hint.textContent = "= " + (h ? h + " h " : "") + (m || !h ? m + " min" : "") + (s % 60 ? " " + (s % 60) + " s" : "");
    }
    input.addEventListener("input", show);
    show();
  }

  function setup() {
    document.querySelectorAll("fieldset[data-docker-fields]").forEach((fieldset) => {
      if (fieldset.dataset.dockerReady) return;
      fieldset.dataset.dockerReady = "1";
      setupPorts(fieldset);
      setupTemplate(fieldset);
      setupLifetime(fieldset);
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", setup);
  else setup();
})();
