// The portal's small behaviours; htmx does the live parts.
(function () {
  "use strict";

  function portFields(form) {
    const toggle = form.querySelector("[data-toggles]");
    if (!toggle) return;
    const target = document.getElementById(toggle.dataset.toggles);
    const sync = () => { target.hidden = !toggle.checked; };
    toggle.addEventListener("change", sync);
    sync();
  }

  function nextIndex(rows) {
    let max = -1;
    rows.querySelectorAll("input[name]").forEach((input) => {
      const match = input.name.match(/-(\d+)-/);
      if (match) max = Math.max(max, Number(match[1]));
    });
    return max + 1;
  }

  function addRow(rows, name, value) {
    const body = rows.querySelector("tbody");
    const html = rows.querySelector("template").innerHTML.replaceAll("__index__", String(nextIndex(rows)));
    body.insertAdjacentHTML("beforeend", html);
    const row = body.lastElementChild;
    if (name !== undefined) row.querySelector("input[name$='-name']").value = name;
    if (value !== undefined) row.querySelector("input[name$='-value']").value = value;
    return row;
  }

  function shmSizeInput() {
    let input = null;
    document.querySelectorAll("[data-rows] input[name$='-name']").forEach((nameInput) => {
      if (nameInput.value.trim() === "SHM_SIZE") input = nameInput.closest("tr").querySelector("input[name$='-value']");
    });
    return input;
  }

  function useShmSize(size) {
    const rows = document.querySelector("[data-rows]");
    if (!rows) return;
    const input = shmSizeInput() || addRow(rows, "SHM_SIZE").querySelector("input[name$='-value']");
    input.value = size;
    input.dataset.suggested = "true";
  }

  // An SHM_SIZE left empty, or still holding an earlier suggestion, follows the chosen VC and SKU count.
  function followShmSuggestion(info) {
    const suggestion = info.querySelector("[data-use-shm]");
    const input = shmSizeInput();
    if (suggestion && input && (input.value === "" || input.dataset.suggested === "true")) {
      useShmSize(suggestion.dataset.useShm);
    }
  }

  document.addEventListener("click", (event) => {
    const target = event.target;
    if (target.closest("[data-add-row]")) {
      addRow(target.closest("[data-rows]")).querySelector("input").focus();
    } else if (target.closest("[data-remove-row]")) {
      target.closest("tr").remove();
    } else if (target.closest("[data-use-shm]")) {
      useShmSize(target.closest("[data-use-shm]").dataset.useShm);
    } else if (target.closest("[data-copy]")) {
      const button = target.closest("[data-copy]");
      const done = () => { button.textContent = button.dataset.copied; };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(button.dataset.copy).then(done);
      } else {
        // Plain-HTTP deployments have no Clipboard API: fall back to a selection.
        const area = document.createElement("textarea");
        area.value = button.dataset.copy;
        document.body.appendChild(area);
        area.select();
        document.execCommand("copy");
        area.remove();
        done();
      }
    } else if (target.closest("[data-close-modal]")) {
      const dialog = target.closest("dialog");
      if (dialog) dialog.close(); else history.back();
    }
  });

  document.addEventListener("change", (event) => {
    if (event.target.matches("[data-submit-on-change]")) event.target.form.submit();
    if (event.target.matches("[data-secret-toggle]")) {
      // A secret is typed unseen; the server never sends one back.
      const value = event.target.closest("tr").querySelector("input[name$='-value']");
      value.type = event.target.checked ? "password" : "text";
      value.autocomplete = event.target.checked ? "new-password" : "off";
    }
    if (event.target.matches("[data-mount-toggle]") && event.target.checked) {
      const path = event.target.closest(".mount-row").querySelector("input[name$='-path']");
      if (!path.value) path.value = path.placeholder;
    }
  });

  document.addEventListener("input", (event) => {
    if (event.target.matches("[data-rows] input[name$='-value']")) delete event.target.dataset.suggested;
  });

  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    // Confirmations are fetched into the one dialog of the page, then shown.
    if (target.id === "modal-body") document.getElementById("modal").showModal();
    if (target.id === "vc-info") followShmSuggestion(target);
  });

  // A log follows while it is scrolled to its end; reading further up stops the following.
  document.addEventListener("htmx:beforeSwap", (event) => {
    const log = event.detail.target;
    if (log.classList && log.classList.contains("log-view")) {
      log.dataset.atEnd = String(log.scrollHeight - log.scrollTop - log.clientHeight < 24 || !log.dataset.atEnd);
    }
  });
  document.addEventListener("htmx:afterSwap", (event) => {
    const log = event.detail.target;
    if (log.classList && log.classList.contains("log-view") && log.dataset.atEnd === "true") {
      log.scrollTop = log.scrollHeight;
    }
  });

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("form.task-form").forEach(portFields);
  });
})();
