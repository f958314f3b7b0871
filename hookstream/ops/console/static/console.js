// hookstream console: live counts, select-all, redrive progress. No build step.
"use strict";

function refreshCounts() {
  const list = document.getElementById("counts");
  if (!list) return;
  fetch("/api/counts?" + list.dataset.query, { credentials: "same-origin" })
    .then((r) => (r.ok ? r.json() : null))
    .then((counts) => {
      if (!counts) return;
      for (const b of list.querySelectorAll("b[data-state]")) {
        const n = counts[b.dataset.state];
        if (n !== undefined) b.textContent = n;
      }
    })
    .catch(() => {});
}

function followJob() {
  const job = document.getElementById("job");
  if (!job) return;
  const tick = () =>
    fetch("/api/jobs/" + job.dataset.job, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((state) => {
        if (!state) return;
        document.getElementById("job-progress").value = state.done + state.missing;
        document.getElementById("job-done").textContent = state.done;
        const label = document.getElementById("job-state");
        if (state.error) label.textContent = "Failed: " + state.error;
        else if (state.finished) label.textContent = "Finished.";
        if (!state.finished) setTimeout(tick, 500);
      })
      .catch(() => setTimeout(tick, 2000));
  tick();
}

document.addEventListener("DOMContentLoaded", () => {
  const all = document.getElementById("select-all");
  if (all) {
    all.addEventListener("change", () => {
      for (const box of document.querySelectorAll("input.pick")) box.checked = all.checked;
    });
  }
  if (document.getElementById("counts")) setInterval(refreshCounts, 3000);
  followJob();
});
