/* Staff pages: a typed note is never lost (issue 21). A static file: the CSP allows scripts from
   'self' only, never inline. Everything here is an extra; the pages work without it.

   - Each card's note is kept as a draft in this browser (localStorage, by request id, for 12
     hours at most; Log out drops them all) as it is typed, put back when the page loads again (after pressing another button on the card, a
     reload, or logging in again after the session ended), and dropped once a save of it worked
     (the card's message carries data-saved).
   - Leaving the page with a typed, unsaved note asks first (beforeunload); pressing a button of
     the page does not (the draft is kept).
   - The "not saved" page keeps the note it gives back as the request's draft too.
   - After an action the page comes back at the card (#r12): it is unfolded, also on a reload,
     and focus goes to its message, so a screen reader reads it. */
(function () {
  "use strict";
  var PREFIX = "ivr-staff-draft:";
  var store = null;
  try { store = window.localStorage; } catch (e) { store = null; }

  // A draft is kept for one login's length at most, and Log out on this browser drops them all:
  // a note may name a family's relative, and a shared computer should not keep it.
  var MAX_AGE = 12 * 3600 * 1000;

  function get(id) {
    try {
      var kept = JSON.parse((store && store.getItem(PREFIX + id)) || "null");
      if (kept && typeof kept.text === "string" && Date.now() - kept.at < MAX_AGE) {
        return kept.text;
      }
    } catch (e) { /* not ours, or unreadable: no draft */ }
    return "";
  }
  function put(id, text) {
    if (!store) { return; }
    try {
      if (text.trim()) {
        store.setItem(PREFIX + id, JSON.stringify({ text: text, at: Date.now() }));
      } else {
        store.removeItem(PREFIX + id);
      }
    } catch (e) { /* full or refused: the page still works */ }
  }
  function drop(id) {
    try { if (store) { store.removeItem(PREFIX + id); } } catch (e) { /* ignore */ }
  }

  var notes = [];
  document.querySelectorAll("form[data-draft]").forEach(function (form) {
    var id = form.getAttribute("data-draft");
    var box = form.querySelector("textarea[name=note]");
    if (!box) { return; }
    notes.push(box);
    var card = form.closest("article");
    if (card && card.querySelector(".flash[data-saved]")) {
      drop(id);  // this note was saved: the server said so in the card
    } else if (!box.value && get(id)) {
      box.value = get(id);
      var folded = form.closest("details");
      if (folded) { folded.open = true; }
      var said = document.createElement("p");
      said.className = "hint restored";
      said.textContent = "Your unsaved note is back: check it and press Save.";
      form.insertBefore(said, form.firstChild);
    }
    box.addEventListener("input", function () { put(id, box.value); });
  });

  document.querySelectorAll("textarea[data-draft-for]").forEach(function (box) {
    var id = box.getAttribute("data-draft-for");
    put(id, box.value);
    box.addEventListener("input", function () { put(id, box.value); });
  });

  function dropAll() {
    if (!store) { return; }
    try {
      Object.keys(store).forEach(function (name) {
        if (name.indexOf(PREFIX) === 0) { store.removeItem(name); }
      });
    } catch (e) { /* ignore */ }
  }

  var submitting = false;
  document.addEventListener("submit", function (event) {
    // An htmx form (Call back, how it went) answers inside its card: no page is left after it.
    if (!(event.target.hasAttribute && event.target.hasAttribute("hx-post"))) { submitting = true; }
    if (event.target.matches && event.target.matches("form[data-logout]")) { dropAll(); }
  }, true);
  window.addEventListener("pageshow", function () { submitting = false; });
  window.addEventListener("beforeunload", function (event) {
    if (submitting) { return; }
    var typed = notes.some(function (box) { return box.value.trim() !== ""; });
    if (typed) {
      event.preventDefault();
      event.returnValue = "";  // older browsers need it set to ask
    }
  });

  // The tab's title starts "(N) " with the waiting count (base.html); htmx swaps the header's
  // count in beside a card's live state, and the title follows it.
  document.addEventListener("htmx:afterSettle", function () {
    var waiting = document.getElementById("waiting");
    if (!waiting || !waiting.dataset.count) { return; }
    var count = Number(waiting.dataset.count);
    var title = document.title.replace(/^\(\d+\) /, "");
    document.title = count > 0 ? "(" + count + ") " + title : title;
  });

  var hash = window.location.hash;
  if (/^#r\d+$/.test(hash)) {
    var target = document.querySelector(hash + " details.more");
    if (target) { target.open = true; }  // the card the page came back to stays unfolded
    var message = document.querySelector(hash + " .flash");
    if (message) {
      message.setAttribute("tabindex", "-1");
      message.focus();
    }
  }
})();
