// Admin "Instances" page: every instance, filters, pagination, extend/stop, stop all of a
// challenge, and the flag-sharing events; refreshed every 5 s. Names are user-controlled,
// so everything is inserted as text, never as HTML.
(function () {
  let page = 1;
  const $ = (id) => document.getElementById(id);

  function call(method, path) {
    return CTFd.fetch(path, { method: method }).then((r) =>
      r.json().catch(() => ({ success: false, error: { code: "SERVICE_UNAVAILABLE", message: "no answer" } }))
    );
  }

  function cell(row, text) {
    const td = document.createElement("td");
    td.textContent = text === null || text === undefined ? "" : String(text);
    row.appendChild(td);
    return td;
  }

  function button(label, kind, onclick) {
    const b = document.createElement("button");
    b.className = "btn btn-sm btn-outline-" + kind + " mr-1";
    b.textContent = label;
    b.onclick = onclick;
    return b;
  }

  function showError(response) {
    const box = $("admin-error");
    if (response.success) {
      box.classList.add("d-none");
      return false;
    }
    const e = response.error || {};
    box.textContent = (e.code || "ERROR") + ": " + (e.message || "");
    box.classList.remove("d-none");
    return true;
  }

  function minutes(seconds) {
    const m = Math.floor(seconds / 60);
    return m + ":" + String(seconds % 60).padStart(2, "0");
  }

  function query() {
    const params = new URLSearchParams({ page: page, per_page: 25 });
    if ($("filter-challenge").value) params.set("challenge_id", $("filter-challenge").value);
    if ($("filter-state").value) params.set("state", $("filter-state").value);
    return params.toString();
  }

  function loadInstances() {
    return call("GET", "/api/v1/docker_admin/instances?" + query()).then((response) => {
      if (showError(response)) return;
      const body = $("instances-table").querySelector("tbody");
      body.replaceChildren();
      response.data.items.forEach((i) => {
        const row = document.createElement("tr");
        row.dataset.instance = i.id;
        cell(row, i.owner_info.name + " (" + i.owner + ")");
        cell(row, i.challenge_info.name);
        cell(row, i.state);
        cell(row, i.connection.map((c) => c.url || c.command).join(" "));
        cell(row, ["starting", "running"].includes(i.state) ? minutes(i.remaining_seconds) : "");
        cell(row, i.extensions_used + " used, " + i.extensions_left + " left");
        const actions = cell(row, "");
        if (["starting", "running"].includes(i.state)) {
          actions.appendChild(button("Extend", "primary", () => call("POST", "/api/v1/docker_admin/instances/" + i.id + "/extend").then(refresh)));
          actions.appendChild(button("Stop", "danger", () => call("DELETE", "/api/v1/docker_admin/instances/" + i.id).then(refresh)));
        }
        body.appendChild(row);
      });
      const pages = Math.max(1, Math.ceil(response.data.total / response.data.per_page));
      const nav = $("pages");
      nav.replaceChildren();
      for (let n = 1; n <= pages; n++) {
        const li = document.createElement("li");
        li.className = "page-item" + (n === page ? " active" : "");
        const a = document.createElement("a");
        a.className = "page-link";
        a.href = "#";
        a.textContent = n;
        a.onclick = (ev) => {
          ev.preventDefault();
          page = n;
          refresh();
        };
        li.appendChild(a);
        nav.appendChild(li);
      }
    });
  }

  function loadShares() {
    return call("GET", "/api/v1/docker_admin/flag-shares?per_page=50").then((response) => {
      if (!response.success) return;
      const body = $("shares-table").querySelector("tbody");
      body.replaceChildren();
      response.data.items.forEach((s) => {
        const row = document.createElement("tr");
        cell(row, new Date(s.created_at).toLocaleString());
        cell(row, s.submitter_info.name + " (" + s.submitter + ")");
        cell(row, s.flag_owner_info.name + " (" + s.flag_owner + ")");
        cell(row, s.challenge_info.name);
        cell(row, s.instance);
        body.appendChild(row);
      });
    });
  }

  function refresh() {
    return Promise.all([loadInstances(), loadShares()]).then(() => {
      $("refreshed").textContent = "Refreshed " + new Date().toLocaleTimeString();
    });
  }

  function boot() {
    $("apply-filter").onclick = () => {
      page = 1;
      refresh();
    };
    $("stop-challenge").onclick = () => {
      const id = $("filter-challenge").value;
      if (!id) return alert("Enter a challenge id in the filter first.");
      if (!confirm("Stop every instance of challenge " + id + "?")) return;
      call("DELETE", "/api/v1/docker_admin/instances?challenge_id=" + encodeURIComponent(id)).then(refresh);
    };
    refresh();
    setInterval(refresh, 5000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})();
