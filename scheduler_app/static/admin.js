/*
 * scheduler-app: the rep's page, /admin.
 *
 * The rep pastes the admin token once; this tab keeps it in sessionStorage and
 * sends it only as "Authorization: Bearer" to this service's own /admin API
 * (same origin: the API allows no other). The page lists the bookings by day
 * in the rep's time zone (the service's SCHEDULER_TIMEZONE), cancels one after
 * a confirmation step, downloads them as CSV, closes and reopens days, and
 * opens extra times. Any 401 signs the page out.
 *
 * No dependencies but kit.js (the pages' shared helpers, loaded before this
 * script). Text from the API is only ever inserted as text, and there
 * is no eval, inline script or inline style: the page runs under the same
 * strict Content-Security-Policy as /demo.
 */
(function () {
  "use strict";

  var kit = window.SchedulerKit; // kit.js, loaded before this script
  var STORAGE_KEY = "scheduler-admin-token";

  var MESSAGES = {
    signIn: "Paste the admin token to sign in.",
    signedOut: "You are signed out.",
    rejected: "The token was not accepted (it may have changed): please sign in again.",
    noToken: "Paste the admin token (SCHEDULER_ADMIN_TOKEN).",
    wrongToken: "This token is not accepted. Paste the value of SCHEDULER_ADMIN_TOKEN exactly.",
    unreachable: "We could not reach the service. Please check your connection and try again.",
    unavailable: "The service is not available right now. Please try again in a moment.",
    checking: "Checking the token\u2026",
    loadingBookings: "Loading bookings\u2026",
    loadingClosures: "Loading closed days\u2026",
    noBookings: {
      confirmed: "No upcoming confirmed bookings.",
      cancelled: "No upcoming cancelled bookings.",
      all: "No upcoming bookings."
    },
    noClosures: "No closed days.",
    cancelling: "Cancelling the meeting\u2026",
    closing: "Closing the days\u2026",
    adding: "Opening the times\u2026",
    downloading: "Preparing the CSV\u2026",
    needFrom: "Choose the first day to close.",
    needExtra: "Choose the day and the start and end times.",
    extraOrder: "The end must be later than the start.",
    kept: "These booked meetings are kept:"
  };

  function $(id) { return document.getElementById(id); }

  var el = kit.el;
  var clear = kit.clear;
  var range = kit.range;
  var say = kit.say;
  var fieldError = kit.fieldError;

  var root = $("admin");
  if (!root) return;

  // -- time, in the rep's zone ------------------------------------------------

  var zone = kit.zoneOrUtc(root.getAttribute("data-rep-timezone") || "UTC");
  var formats = kit.formats(zone);
  var dayKey = formats.dayKey;
  var dayLabel = formats.dayLabel;
  var timeLabel = formats.timeLabel;
  var dateLabel = new Intl.DateTimeFormat(undefined, {
    weekday: "short", month: "short", day: "numeric", year: "numeric", timeZone: "UTC"
  });

  function slotTime(slot) {
    return range(timeLabel, new Date(slot.start_time), new Date(slot.end_time));
  }

  function slotWhen(slot) {
    return dayLabel.format(new Date(slot.start_time)) + ", " + slotTime(slot);
  }

  /* A YYYY-MM-DD day as a label ("Tue, Nov 24, 2026"); the day itself, no zone. */
  function dayOf(text) {
    return dateLabel.format(new Date(text + "T00:00:00Z"));
  }

  function days(closure) {
    return closure.from === closure.to ? dayOf(closure.from) : dayOf(closure.from) + " \u2013 " + dayOf(closure.to);
  }

  // -- talking to the API -------------------------------------------------------

  var token = "";
  try {
    token = window.sessionStorage.getItem(STORAGE_KEY) || "";
  } catch (e) {
    token = "";
  }

  function keep(value) {
    token = value;
    try {
      if (value) window.sessionStorage.setItem(STORAGE_KEY, value);
      else window.sessionStorage.removeItem(STORAGE_KEY);
    } catch (e) { /* a private window: the token lasts as long as the page */ }
  }

  /* kit.request with the kept token (or ``options.token``): resolves {status,
     body, headers} for any HTTP answer (``body`` a Blob when ``options.blob``),
     rejects when there is none. */
  function request(method, path, options) {
    options = options || {};
    var sent = { credentials: "same-origin", token: options.token !== undefined ? options.token : token };
    ["payload", "accept", "blob"].forEach(function (name) { sent[name] = options[name]; });
    return kit.request(method, path, sent);
  }

  /* A call with the kept token: a 401 signs the page out (and the promise
     resolves null, the caller having nothing more to do). */
  function api(method, path, options) {
    return request(method, path, options).then(function (answer) {
      if (answer.status === 401) {
        signOut(MESSAGES.rejected, "error");
        return null;
      }
      return answer;
    });
  }

  /* A refusal's words: its detail, or the messages of FastAPI's list of errors. */
  function problem(answer) {
    if (answer.status >= 500) return MESSAGES.unavailable;
    return kit.problem(answer.body, MESSAGES.unavailable);
  }

  // -- the page's parts ---------------------------------------------------------

  var ui = {
    status: $("status"), signout: $("signout"), zoneNote: $("zone-note"),
    signin: $("signin"), tokenInput: $("token"), tokenError: $("token-error"), signinSubmit: $("signin-submit"),
    app: $("app"),
    filter: $("status-filter"), refresh: $("refresh"), csv: $("csv"),
    bookingsStatus: $("bookings-status"), bookings: $("bookings"),
    closureForm: $("closure-form"), closureFrom: $("closure-from"), closureTo: $("closure-to"),
    closureReason: $("closure-reason"), closureError: $("closure-error"), closureSubmit: $("closure-submit"),
    closureResult: $("closure-result"), closuresStatus: $("closures-status"), closures: $("closures"),
    extraForm: $("extra-form"), extraDay: $("extra-day"), extraStart: $("extra-start"), extraEnd: $("extra-end"),
    extraError: $("extra-error"), extraSubmit: $("extra-submit"), extraResult: $("extra-result")
  };

  var loads = 0;

  function busy(delta) {
    loads += delta;
    root.setAttribute("aria-busy", loads > 0 ? "true" : "false");
  }

  function failure(status) {
    return kit.failure(status, MESSAGES);
  }

  // -- signing in and out ---------------------------------------------------------

  function showSignIn(message, tone) {
    ui.app.hidden = true;
    ui.signout.hidden = true;
    ui.signin.hidden = false;
    ui.tokenInput.value = "";
    say(ui.status, message || MESSAGES.signIn, tone || null);
    ui.tokenInput.focus();
  }

  function signOut(message, tone) {
    keep("");
    showSignIn(message || MESSAGES.signedOut, tone);
  }

  function showApp() {
    ui.signin.hidden = true;
    ui.app.hidden = false;
    ui.signout.hidden = false;
    fieldError(ui.tokenError, "", [ui.tokenInput]);
    say(ui.status, "", null);
    ui.zoneNote.textContent = "Times are in your time zone, " + zone.replace(/_/g, " ") +
      " (SCHEDULER_TIMEZONE).";
    loadBookings();
    loadClosures();
  }

  ui.signin.addEventListener("submit", function (event) {
    event.preventDefault();
    var given = ui.tokenInput.value.trim();
    if (!given) {
      fieldError(ui.tokenError, MESSAGES.noToken, [ui.tokenInput]);
      ui.tokenInput.focus();
      return;
    }
    fieldError(ui.tokenError, "", [ui.tokenInput]);
    ui.signinSubmit.disabled = true;
    busy(1);
    say(ui.status, MESSAGES.checking, null);
    request("GET", "/admin/closures", { token: given }).then(function (answer) {
      busy(-1);
      ui.signinSubmit.disabled = false;
      if (answer.status === 200) {
        keep(given);
        showApp();
        $("bookings-title").focus();
      } else {
        say(ui.status, "", null);
        fieldError(ui.tokenError, answer.status === 401 ? MESSAGES.wrongToken : failure(answer.status),
          [ui.tokenInput]);
        ui.tokenInput.focus();
      }
    }, function () {
      busy(-1);
      ui.signinSubmit.disabled = false;
      say(ui.status, "", null);
      fieldError(ui.tokenError, MESSAGES.unreachable, [ui.tokenInput]);
    });
  });

  ui.signout.addEventListener("click", function () { signOut(); });

  // -- bookings -------------------------------------------------------------------

  function bookingsPath(format) {
    return "/admin/bookings?status=" + encodeURIComponent(ui.filter.value) + (format ? "&format=" + format : "");
  }

  function loadBookings(message) {
    busy(1);
    say(ui.bookingsStatus, MESSAGES.loadingBookings, null);
    api("GET", bookingsPath()).then(function (answer) {
      busy(-1);
      if (answer === null) return;
      if (answer.status === 200 && Array.isArray(answer.body)) {
        renderBookings(answer.body);
        var none = answer.body.length === 0 ? MESSAGES.noBookings[ui.filter.value] : "";
        say(ui.bookingsStatus, [message, none].filter(Boolean).join(" "), null);
      } else {
        say(ui.bookingsStatus, problem(answer), "error");
      }
    }, function () {
      busy(-1);
      say(ui.bookingsStatus, MESSAGES.unreachable, "error");
    });
  }

  function renderBookings(list) {
    clear(ui.bookings);
    var groups = [];
    var byDay = {};
    list.forEach(function (booking) {
      var key = dayKey.format(new Date(booking.slot.start_time));
      if (!byDay[key]) {
        byDay[key] = [];
        groups.push({ key: key, first: booking.slot, bookings: byDay[key] });
      }
      byDay[key].push(booking);
    });
    groups.forEach(function (group, index) {
      var section = el("section", "ad-day");
      var title = el("h3", null, dayLabel.format(new Date(group.first.start_time)));
      title.id = "day-" + index;
      section.setAttribute("aria-labelledby", title.id);
      var items = el("ul", "ad-list");
      items.setAttribute("aria-labelledby", title.id);
      group.bookings.forEach(function (booking) { items.appendChild(bookingItem(booking)); });
      section.appendChild(title);
      section.appendChild(items);
      ui.bookings.appendChild(section);
    });
  }

  function sourceText(source) {
    if (!source) return "";
    var parts = [];
    ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"].forEach(function (name) {
      if (source[name]) parts.push(name.replace("utm_", "") + " " + source[name]);
    });
    if (source.referrer) parts.push("from " + source.referrer);
    return parts.join(", ");
  }

  function fact(list, name, value) {
    if (!value) return;
    var row = el("div");
    row.appendChild(el("dt", null, name));
    row.appendChild(el("dd", null, value));
    list.appendChild(row);
  }

  function bookingItem(booking) {
    var cancelled = booking.status === "cancelled";
    var item = el("li", "ad-item" + (cancelled ? " ad-item--cancelled" : ""));
    var head = el("div", "ad-item-head");
    head.appendChild(el("span", "ad-when", slotTime(booking.slot)));
    var by = booking.cancelled_by === "rep" ? " by you" : (booking.cancelled_by === "lead" ? " by the lead" : "");
    head.appendChild(el("span", "ad-tag", cancelled ? "Cancelled" + by : "Confirmed"));
    item.appendChild(head);
    var facts = el("dl", "ad-facts");
    fact(facts, "Email", booking.email);
    fact(facts, "Name", booking.name);
    fact(facts, "Notes", booking.notes);
    fact(facts, "Source", sourceText(booking.source));
    fact(facts, "Reference", booking.reference);
    if (cancelled) fact(facts, "Reason", booking.cancel_reason);
    item.appendChild(facts);
    if (!cancelled && new Date(booking.slot.start_time).getTime() > Date.now()) {
      var open = el("button", "sw-button sw-button--secondary sw-button--danger", "Cancel meeting");
      open.type = "button";
      open.setAttribute("aria-label", "Cancel meeting with " + booking.email + ", " + slotWhen(booking.slot));
      var buttons = el("div", "sw-buttons");
      buttons.appendChild(open);
      item.appendChild(buttons);
      open.addEventListener("click", function () {
        buttons.hidden = true;
        item.appendChild(cancelForm(booking, function () {
          buttons.hidden = false;
          open.focus();
        }));
      });
    }
    return item;
  }

  /* The confirmation step of a cancel, inside the booking's item. */
  function cancelForm(booking, back) {
    var form = el("form", "sw-panel");
    form.noValidate = true;
    var question = el("p", null, "Cancel the meeting with " + booking.email + ", " + slotWhen(booking.slot) +
      "? Its time becomes free again, and the lead is told when emails are set up.");
    question.id = "cancel-question-" + booking.reference;
    form.setAttribute("aria-labelledby", question.id);
    var label = el("label", "sw-label", "Reason (optional)");
    var reason = el("textarea", "sw-input");
    reason.id = "cancel-reason-" + booking.reference;
    reason.maxLength = 500;
    reason.rows = 2;
    label.htmlFor = reason.id;
    var error = el("p", "sw-field-error");
    error.id = "cancel-error-" + booking.reference;
    error.hidden = true;
    reason.setAttribute("aria-describedby", error.id);
    var buttons = el("div", "sw-buttons");
    var confirm = el("button", "sw-button sw-button--danger", "Yes, cancel it");
    confirm.type = "submit";
    var keepIt = el("button", "sw-button sw-button--secondary", "Keep it");
    keepIt.type = "button";
    buttons.appendChild(confirm);
    buttons.appendChild(keepIt);
    [question, label, reason, error, buttons].forEach(function (node) { form.appendChild(node); });

    keepIt.addEventListener("click", function () {
      form.parentNode.removeChild(form);
      back();
    });
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      confirm.disabled = keepIt.disabled = true;
      fieldError(error, "", []);
      busy(1);
      say(ui.bookingsStatus, MESSAGES.cancelling, null);
      var payload = reason.value.trim() ? { reason: reason.value.trim() } : {};
      api("POST", "/admin/bookings/" + encodeURIComponent(booking.reference) + "/cancel", { payload: payload })
        .then(function (answer) {
          busy(-1);
          if (answer === null) return;
          confirm.disabled = keepIt.disabled = false;
          if (answer.status === 200) {
            loadBookings("Cancelled the meeting with " + booking.email + ", " + slotWhen(booking.slot) + ".");
            ui.filter.focus();
          } else {
            say(ui.bookingsStatus, "", null);
            fieldError(error, problem(answer), [reason]);
            reason.focus();
          }
        }, function () {
          busy(-1);
          confirm.disabled = keepIt.disabled = false;
          say(ui.bookingsStatus, "", null);
          fieldError(error, MESSAGES.unreachable, []);
        });
    });
    setTimeout(function () { reason.focus(); }, 0);
    return form;
  }

  ui.filter.addEventListener("change", function () { loadBookings(); });
  ui.refresh.addEventListener("click", function () {
    loadBookings();
    loadClosures();
  });

  ui.csv.addEventListener("click", function () {
    ui.csv.disabled = true;
    say(ui.bookingsStatus, MESSAGES.downloading, null);
    api("GET", bookingsPath("csv"), { accept: "text/csv", blob: true }).then(function (answer) {
      ui.csv.disabled = false;
      if (answer === null) return;
      if (answer.status !== 200) {
        say(ui.bookingsStatus, problem(answer), "error");
        return;
      }
      var disposition = answer.headers.get("Content-Disposition") || "";
      var named = /filename="([^"]+)"/.exec(disposition);
      var name = named ? named[1] : "bookings.csv";
      kit.download(answer.body, name, document.body, 1000);
      say(ui.bookingsStatus, "The CSV is downloaded (" + name + ").", null);
    }, function () {
      ui.csv.disabled = false;
      say(ui.bookingsStatus, MESSAGES.unreachable, "error");
    });
  });

  // -- closed days ----------------------------------------------------------------

  function conflictList(conflicts) {
    var list = el("ul", "ad-conflicts");
    conflicts.forEach(function (booking) {
      list.appendChild(el("li", null, slotWhen(booking.slot) + ": " + booking.email +
        (booking.name ? " (" + booking.name + ")" : "")));
    });
    return list;
  }

  function loadClosures() {
    busy(1);
    say(ui.closuresStatus, MESSAGES.loadingClosures, null);
    api("GET", "/admin/closures").then(function (answer) {
      busy(-1);
      if (answer === null) return;
      if (answer.status === 200 && Array.isArray(answer.body)) {
        renderClosures(answer.body);
        say(ui.closuresStatus, answer.body.length ? "" : MESSAGES.noClosures, null);
      } else {
        say(ui.closuresStatus, problem(answer), "error");
      }
    }, function () {
      busy(-1);
      say(ui.closuresStatus, MESSAGES.unreachable, "error");
    });
  }

  function renderClosures(list) {
    clear(ui.closures);
    list.forEach(function (closure) {
      var item = el("li", "ad-item");
      var head = el("div", "ad-item-head");
      head.appendChild(el("span", "ad-when", days(closure)));
      if (closure.reason) head.appendChild(el("span", "ad-tag", closure.reason));
      item.appendChild(head);
      if (closure.conflicts.length) {
        item.appendChild(el("p", null, closure.conflicts.length + " booked meeting(s) on these days, kept:"));
        item.appendChild(conflictList(closure.conflicts));
      }
      var error = el("p", "sw-field-error");
      error.hidden = true;
      var reopen = el("button", "sw-button sw-button--secondary", "Reopen");
      reopen.type = "button";
      reopen.setAttribute("aria-label", "Reopen " + days(closure));
      var buttons = el("div", "sw-buttons");
      buttons.appendChild(reopen);
      item.appendChild(error);
      item.appendChild(buttons);
      reopen.addEventListener("click", function () {
        reopen.disabled = true;
        api("DELETE", "/admin/closures/" + closure.id).then(function (answer) {
          reopen.disabled = false;
          if (answer === null) return;
          if (answer.status === 204 || answer.status === 404) {
            showResult(ui.closureResult, [answer.headers.get("Scheduler-Notice") ||
              "Reopened " + days(closure) + "."], null, "done");
            loadClosures();
            ui.closureFrom.focus();
          } else {
            fieldError(error, problem(answer), []);
          }
        }, function () {
          reopen.disabled = false;
          fieldError(error, MESSAGES.unreachable, []);
        });
      });
      ui.closures.appendChild(item);
    });
  }

  function showResult(node, lines, extra, tone) {
    clear(node);
    node.className = "ad-result" + (tone ? " ad-result--" + tone : "");
    lines.forEach(function (line) { node.appendChild(el("p", null, line)); });
    if (extra) node.appendChild(extra);
  }

  ui.closureForm.addEventListener("submit", function (event) {
    event.preventDefault();
    clear(ui.closureResult);
    if (!ui.closureFrom.value) {
      fieldError(ui.closureError, MESSAGES.needFrom, [ui.closureFrom]);
      ui.closureFrom.focus();
      return;
    }
    fieldError(ui.closureError, "", [ui.closureFrom, ui.closureTo]);
    var payload = { from: ui.closureFrom.value };
    if (ui.closureTo.value) payload.to = ui.closureTo.value;
    if (ui.closureReason.value.trim()) payload.reason = ui.closureReason.value.trim();
    ui.closureSubmit.disabled = true;
    busy(1);
    say(ui.closuresStatus, MESSAGES.closing, null);
    api("POST", "/admin/closures", { payload: payload }).then(function (answer) {
      busy(-1);
      ui.closureSubmit.disabled = false;
      if (answer === null) return;
      say(ui.closuresStatus, "", null);
      if (answer.status === 201 && answer.body) {
        var conflicts = answer.body.conflicts || [];
        var lines = [answer.body.message];
        if (conflicts.length) lines.push(MESSAGES.kept);
        showResult(ui.closureResult, lines, conflicts.length ? conflictList(conflicts) : null,
          conflicts.length ? "notice" : "done");
        ui.closureForm.reset();
        loadClosures();
        loadBookings();
      } else {
        fieldError(ui.closureError, problem(answer), [ui.closureFrom, ui.closureTo]);
        ui.closureFrom.focus();
      }
    }, function () {
      busy(-1);
      ui.closureSubmit.disabled = false;
      say(ui.closuresStatus, "", null);
      fieldError(ui.closureError, MESSAGES.unreachable, []);
    });
  });

  // -- extra times ----------------------------------------------------------------

  ui.extraForm.addEventListener("submit", function (event) {
    event.preventDefault();
    clear(ui.extraResult);
    var inputs = [ui.extraDay, ui.extraStart, ui.extraEnd];
    var missing = inputs.filter(function (input) { return !input.value; });
    if (missing.length) {
      fieldError(ui.extraError, MESSAGES.needExtra, missing);
      missing[0].focus();
      return;
    }
    if (ui.extraEnd.value <= ui.extraStart.value) {
      fieldError(ui.extraError, MESSAGES.extraOrder, [ui.extraEnd]);
      ui.extraEnd.focus();
      return;
    }
    fieldError(ui.extraError, "", inputs);
    var day = ui.extraDay.value;
    ui.extraSubmit.disabled = true;
    busy(1);
    say(ui.extraResult, MESSAGES.adding, null);
    api("POST", "/admin/slots", {
      payload: { start: day + "T" + ui.extraStart.value, end: day + "T" + ui.extraEnd.value }
    }).then(function (answer) {
      busy(-1);
      ui.extraSubmit.disabled = false;
      if (answer === null) return;
      if (answer.status === 201 && Array.isArray(answer.body)) {
        var times = answer.body.map(slotTime).join(", ");
        showResult(ui.extraResult, ["Opened " + answer.body.length + " time(s) on " +
          dayLabel.format(new Date(answer.body[0].start_time)) + ": " + times + "."], null, "done");
        ui.extraForm.reset();
      } else {
        clear(ui.extraResult);
        fieldError(ui.extraError, problem(answer), inputs);
        ui.extraDay.focus();
      }
    }, function () {
      busy(-1);
      ui.extraSubmit.disabled = false;
      clear(ui.extraResult);
      fieldError(ui.extraError, MESSAGES.unreachable, []);
    });
  });

  $("bookings-title").tabIndex = -1;
  if (token) showApp();
  else showSignIn();
})();
