/*
 * scheduler-app: the lead's page for one booking, /manage/<reference>#token=<token>.
 *
 * The token is read from the URL fragment, which browsers send to no server and
 * put in no Referer; it goes to the API only in an Authorization: Bearer header.
 * Loading the page only reads the booking (GET /bookings/<reference>). The lead
 * can cancel it, after a confirmation step, or move it to another free time:
 * the time picked is held first (POST /holds) so that nobody takes it meanwhile,
 * then the move sends the hold's token and an Idempotency-Key (one per attempt,
 * the same again when a network error or a 5xx is retried).
 *
 * A link without the token (the links in emails: tokens are stored only as
 * hashes, so no email can carry one) shows a form instead: the lead pastes the
 * token or the whole manage link, the token is put in the fragment with
 * history.replaceState (never in the query string) and the booking is loaded.
 *
 * No dependencies but kit.js (the pages' shared helpers, loaded before this
 * script). Text from the API is only ever inserted as text, and there
 * is no eval, inline script or inline style: the page runs under the same strict
 * Content-Security-Policy as /demo.
 */
(function () {
  "use strict";

  var kit = window.SchedulerKit; // kit.js, loaded before this script
  // The service's own path (empty, or a prefix such as /leads): what comes before /manage/.
  var base = window.location.pathname.replace(/\/manage\/[^\/]*$/, "");

  var MESSAGES = {
    loading: "Loading your booking\u2026",
    noReference: "This link is incomplete: the booking\u2019s reference is missing. " +
      "Please open the link from your booking confirmation exactly as it was sent.",
    noToken: "This link does not carry your booking\u2019s token. Paste it below to see your booking.",
    pasteSomething: "Please paste the token, or the whole link with \u201c#token=\u201d in it.",
    notFound: "We could not find this booking. The link may be incomplete or mistyped: " +
      "please open it again from your booking confirmation.",
    unreachable: "We could not reach the booking service. Please check your connection and try again.",
    unavailable: "The booking service is not available right now. Please try again in a moment.",
    confirmed: "Your meeting is booked. You can move it to another time or cancel it here.",
    cancelled: "This meeting is cancelled. To meet after all, please book a new time.",
    started: "This meeting has started, so it can no longer be moved or cancelled here.",
    justCancelled: "Your meeting is cancelled. Its time is free for others again.",
    moved: function (when) { return "Your meeting is moved to " + when + "."; },
    cancelling: "Cancelling your meeting\u2026",
    slotsLoading: "Loading free times\u2026",
    pick: function (count) {
      return count === 1 ? "1 free time. Pick it to move your meeting there."
        : count + " free times. Pick one to move your meeting there.";
    },
    empty: "There are no other free times right now. Please check again later.",
    taken: "Sorry, that time was just taken. Please pick another one.",
    holding: function (when) { return "Holding " + when + " for you\u2026"; },
    held: function (when) { return when + " is held for you for a few minutes. Move your meeting to it?"; },
    moving: "Moving your meeting\u2026"
  };

  var formats = kit.formats(undefined); // in the lead's own time zone (the browser's)
  var dayLabel = formats.dayLabel;
  var dateLabel = formats.dateLabel;
  var timeLabel = formats.timeLabel;
  var visitorZone = kit.visitorZone;
  var el = kit.el;
  var clear = kit.clear;
  var range = kit.range;
  var say = kit.say;
  var detail = kit.detail;

  function $(id) { return document.getElementById(id); }

  function when(slot) {
    var start = new Date(slot.start_time);
    return dayLabel.format(start) + ", " + timeLabel.format(start);
  }

  /* kit.request to this service: resolves {status, body} for any HTTP answer,
     rejects when there is none (network down, timed out). ``options``: token
     (sent only as a Bearer header), key (Idempotency-Key), payload. */
  function request(method, path, options) {
    options = options || {};
    var sent = { key: options.key, payload: options.payload };
    if (options.token) sent.headers = { Authorization: "Bearer " + options.token };
    return kit.request(method, base + path, sent);
  }

  /* A 422's words: its detail, or the messages of FastAPI's list of errors. */
  function problem(body) {
    return kit.problem(body, "The service could not accept this request.");
  }

  function failure(status) {
    return kit.failure(status, MESSAGES);
  }

  var root = $("manage");
  if (!root) return;
  // The rep's time, in the zone the service names (SCHEDULER_TIMEZONE).
  var rep = new kit.RepClock(kit.zoneOrUtc(root.getAttribute("data-rep-timezone") || "UTC"));

  var ui = {
    status: $("status"), retry: $("retry"),
    tokenForm: $("token-form"), tokenInput: $("token-input"), tokenMessage: $("token-message"),
    tokenSubmit: $("token-submit"),
    booking: $("booking"), title: $("booking-title"), reference: $("booking-reference"),
    state: $("booking-state"), date: $("booking-date"), time: $("booking-time"), rep: $("booking-rep"),
    email: $("booking-email"), nameRow: $("booking-name-row"), name: $("booking-name"), note: $("booking-note"),
    actions: $("actions"), rescheduleOpen: $("reschedule-open"), cancelOpen: $("cancel-open"),
    cancelPanel: $("cancel-panel"), cancelTitle: $("cancel-title"), cancelText: $("cancel-text"),
    reason: $("cancel-reason"), reasonError: $("cancel-reason-error"), cancelMessage: $("cancel-message"),
    cancelConfirm: $("cancel-confirm"), cancelBack: $("cancel-back"),
    reschedulePanel: $("reschedule-panel"), rescheduleTitle: $("reschedule-title"),
    intro: $("reschedule-intro"), moveMessage: $("reschedule-message"), slotsRetry: $("reschedule-retry"),
    days: $("reschedule-days"), moveConfirm: $("reschedule-confirm"), moveBack: $("reschedule-back")
  };

  var state = {
    reference: "",
    token: "",
    booking: null,
    panel: null, // null, "cancel" or "reschedule"
    busy: false,
    buttons: [],
    selected: null,
    holds: new kit.Holds(function (method, path, payload, token) { // this page's live hold
      return request(method, path, { payload: payload, token: token });
    }),
    attempt: new kit.Attempt() // the move last sent, while it may be retried
  };

  function setBusy(busy) {
    state.busy = busy;
    root.setAttribute("aria-busy", busy ? "true" : "false");
    [ui.rescheduleOpen, ui.cancelOpen, ui.cancelConfirm, ui.moveConfirm, ui.tokenSubmit].forEach(function (button) {
      button.disabled = busy;
    });
    state.buttons.forEach(function (button) { button.disabled = busy; });
  }

  function bookingPath() {
    return "/bookings/" + encodeURIComponent(state.reference);
  }

  function readLink() {
    var parts = window.location.pathname.split("/");
    var reference = "";
    try {
      reference = decodeURIComponent(parts[parts.length - 1] || "");
    } catch (e) {
      reference = "";
    }
    var token = new URLSearchParams(window.location.hash.replace(/^#/, "")).get("token") || "";
    state.reference = reference.trim();
    state.token = token.trim();
  }

  /* The token in what the lead pasted: a bare token, or a link (or just its
     fragment) with token=... after its "#". "" when there is none. */
  function pastedToken(text) {
    text = text.trim();
    var hash = text.indexOf("#");
    var fragment = hash >= 0 ? text.slice(hash + 1) : text;
    if (/(^|&)token=/.test(fragment)) return (new URLSearchParams(fragment).get("token") || "").trim();
    if (hash >= 0 || /[\s\/?&=:]/.test(text)) return ""; // a link, or words, without a token
    return text;
  }

  /* The page's own path with ``token`` as its fragment, or none, in place of
     the current URL (no history entry is added). */
  function setFragment(token) {
    var url = window.location.pathname + (token ? "#token=" + encodeURIComponent(token) : "");
    window.history.replaceState(null, "", url);
  }

  /* What the form says next to the field (``error``: about what was pasted). */
  function tokenSay(message, error) {
    say(ui.tokenMessage, message || "", error ? "error" : null);
    if (error) {
      ui.tokenInput.setAttribute("aria-invalid", "true");
    } else {
      ui.tokenInput.removeAttribute("aria-invalid");
    }
  }

  function askToken(focus) {
    ui.tokenForm.hidden = false;
    say(ui.status, MESSAGES.noToken, null);
    if (focus) ui.tokenInput.focus();
  }

  function submitToken() {
    if (state.busy) return;
    var token = pastedToken(ui.tokenInput.value);
    if (!token) {
      tokenSay(MESSAGES.pasteSomething, true);
      ui.tokenInput.focus();
      return;
    }
    tokenSay("", false);
    setFragment(token);
    load(true, true);
  }

  /* The pasted token did not open the booking: it leaves the fragment again,
     and the form says why next to the field. */
  function tokenFailed(message) {
    setFragment("");
    state.token = "";
    tokenSay(message, true);
    ui.tokenInput.focus();
    ui.tokenInput.select();
  }

  function changeable(booking) {
    return booking.status === "confirmed" && new Date(booking.slot.start_time).getTime() > Date.now();
  }

  // -- the booking ------------------------------------------------------------

  /* Read the booking; ``refocus``: the visitor asked (Try again), so the focus
     goes on to the booking, the button they used being gone. ``pasted``: the
     token came from the form, which then says what went wrong. */
  function load(refocus, pasted) {
    readLink();
    closePanels();
    ui.booking.hidden = true;
    ui.actions.hidden = true;
    ui.retry.hidden = true;
    if (!pasted) tokenSay("", false);
    if (!state.reference) {
      ui.tokenForm.hidden = true;
      say(ui.status, MESSAGES.noReference, "error");
      return;
    }
    if (!state.token) {
      askToken(true);
      return;
    }
    if (!pasted) ui.tokenForm.hidden = true;
    setBusy(true);
    if (pasted) {
      tokenSay(MESSAGES.loading, false); // next to the field; the page's status stays
    } else {
      say(ui.status, MESSAGES.loading, null);
    }
    request("GET", bookingPath(), { token: state.token }).then(function (answer) {
      setBusy(false);
      if (answer.status === 200 && answer.body && answer.body.slot) {
        ui.tokenForm.hidden = true;
        ui.tokenInput.value = "";
        tokenSay("", false);
        show(answer.body);
        say(ui.status, stateMessage(answer.body), answer.body.status === "cancelled" ? "notice" : null);
        if (refocus) ui.title.focus();
      } else if (pasted) {
        tokenFailed(answer.status === 404 || answer.status === 401 ? MESSAGES.notFound : failure(answer.status));
      } else if (answer.status === 404 || answer.status === 401) {
        notFound();
      } else {
        pageFailed(answer.status, refocus);
      }
    }, function () {
      setBusy(false);
      if (pasted) {
        tokenFailed(failure(0));
      } else {
        pageFailed(0, refocus);
      }
    });
  }

  function stateMessage(booking) {
    if (booking.status === "cancelled") return MESSAGES.cancelled;
    return changeable(booking) ? MESSAGES.confirmed : MESSAGES.started;
  }

  function notFound() {
    closePanels();
    ui.booking.hidden = true;
    ui.actions.hidden = true;
    say(ui.status, MESSAGES.notFound, "error");
  }

  function pageFailed(status, refocus) {
    say(ui.status, failure(status), "error");
    ui.retry.hidden = false;
    if (refocus) ui.retry.focus();
  }

  function show(booking) {
    state.booking = booking;
    var slot = booking.slot;
    var start = new Date(slot.start_time);
    var end = new Date(slot.end_time);
    var cancelled = booking.status === "cancelled";
    ui.reference.textContent = booking.reference;
    ui.state.textContent = cancelled ? "Cancelled" : "Confirmed";
    ui.state.classList.toggle("sw-booking-state--cancelled", cancelled);
    ui.booking.classList.toggle("sw-booking--cancelled", cancelled);
    ui.date.textContent = dateLabel.format(start);
    ui.time.textContent = range(timeLabel, start, end) + " your time (" + visitorZone.replace(/_/g, " ") + ")";
    ui.rep.textContent = rep.range(slot.start_time, slot.end_time) + " rep\u2019s time (" + rep.name + ")";
    ui.email.textContent = booking.email;
    ui.name.textContent = booking.name || "";
    ui.nameRow.hidden = !booking.name;
    var note = cancelled ? MESSAGES.cancelled : (changeable(booking) ? "" : MESSAGES.started);
    ui.note.textContent = note;
    ui.note.hidden = !note;
    ui.booking.hidden = false;
    ui.actions.hidden = !changeable(booking) || state.panel !== null;
  }

  /* Read the booking again after a refusal that says it changed elsewhere. */
  function refresh() {
    request("GET", bookingPath(), { token: state.token }).then(function (answer) {
      if (answer.status === 200 && answer.body && answer.body.slot) show(answer.body);
    }, function () {});
  }

  function closePanels() {
    state.holds.release();
    state.panel = null;
    ui.cancelPanel.hidden = true;
    ui.reschedulePanel.hidden = true;
    if (state.booking) ui.actions.hidden = !changeable(state.booking);
  }

  // -- cancel, after a confirmation step ------------------------------------

  function openCancel() {
    if (state.busy) return;
    closePanels();
    state.panel = "cancel";
    ui.actions.hidden = true;
    ui.reason.value = "";
    reasonError(null);
    say(ui.cancelMessage, "", null);
    ui.cancelText.hidden = false;
    ui.cancelConfirm.hidden = false;
    ui.cancelBack.textContent = "Keep it";
    ui.cancelPanel.hidden = false;
    ui.cancelTitle.focus();
  }

  function reasonError(message) {
    kit.fieldError(ui.reasonError, message, [ui.reason]);
  }

  function sendCancel() {
    if (state.busy) return;
    var reason = ui.reason.value.trim();
    reasonError(null);
    setBusy(true);
    say(ui.cancelMessage, MESSAGES.cancelling, null);
    request("POST", bookingPath() + "/cancel", {
      token: state.token, payload: reason ? { reason: reason } : {}
    }).then(function (answer) {
      setBusy(false);
      if (answer.status === 200 && answer.body && answer.body.slot) {
        closePanels();
        show(answer.body);
        say(ui.status, MESSAGES.justCancelled, "notice");
        ui.title.focus();
      } else if (answer.status === 404 || answer.status === 401) {
        notFound();
      } else if (answer.status === 409) {
        // The meeting has started: nothing changed, and nothing can.
        say(ui.cancelMessage, detail(answer.body, MESSAGES.started), "error");
        ui.cancelText.hidden = true;
        ui.cancelConfirm.hidden = true;
        ui.cancelBack.textContent = "Close";
        ui.cancelBack.focus();
        refresh();
      } else if (answer.status === 422) {
        reasonError(problem(answer.body));
        say(ui.cancelMessage, "", null);
        ui.reason.focus();
      } else if (answer.status === 429) {
        tooMany(ui.cancelMessage, ui.cancelConfirm, answer);
      } else {
        say(ui.cancelMessage, failure(answer.status), "error");
      }
    }, function () {
      setBusy(false);
      say(ui.cancelMessage, failure(0), "error");
    });
  }

  // -- reschedule: pick, hold, move ------------------------------------------

  function openReschedule() {
    if (state.busy) return;
    closePanels();
    state.panel = "reschedule";
    state.selected = null;
    ui.actions.hidden = true;
    ui.moveConfirm.hidden = true;
    ui.moveBack.textContent = "Keep the current time";
    ui.reschedulePanel.hidden = false;
    ui.rescheduleTitle.focus();
    loadSlots();
  }

  /* List the free times; ``refocus`` as for load (Check again, Try again). */
  function loadSlots(notice, refocus) {
    ui.slotsRetry.hidden = true;
    setBusy(true);
    say(ui.moveMessage, notice || MESSAGES.slotsLoading, notice ? "notice" : null);
    request("GET", "/availability").then(function (answer) {
      setBusy(false);
      if (state.panel !== "reschedule") return;
      if (answer.status === 200 && Array.isArray(answer.body)) {
        renderSlots(answer.body, notice, refocus);
      } else {
        slotsFailed(answer.status, refocus);
      }
    }, function () {
      setBusy(false);
      if (state.panel === "reschedule") slotsFailed(0, refocus);
    });
  }

  function slotsFailed(status, refocus) {
    say(ui.moveMessage, failure(status), "error");
    ui.slotsRetry.textContent = "Try again";
    ui.slotsRetry.hidden = false;
    if (refocus) ui.slotsRetry.focus();
  }

  function renderSlots(free, notice, refocus) {
    var current = state.booking ? state.booking.slot.id : null;
    var slots = free.filter(function (slot) { return slot.id !== current; });
    // The time this page holds is not listed as free any more; it is still the lead's pick.
    var held = state.holds.held;
    if (held && !slots.some(function (s) { return s.id === held.slotId; })) {
      slots = kit.byStart(slots.concat([held.slot]));
    }
    if (state.selected && !slots.some(function (s) { return s.id === state.selected.id; })) select(null);
    clear(ui.days);
    state.buttons = [];
    if (!slots.length) {
      ui.intro.hidden = true;
      say(ui.moveMessage, notice ? notice + " " + MESSAGES.empty : MESSAGES.empty, notice ? "notice" : "");
      ui.slotsRetry.textContent = "Check again";
      ui.slotsRetry.hidden = false;
      if (refocus || notice) ui.slotsRetry.focus();
      return;
    }
    ui.intro.textContent = kit.zonesIntro(rep.name);
    ui.intro.hidden = false;
    kit.slotDays(ui.days, slots, { formats: formats, heading: "h4", idPrefix: "reschedule-day-", item: slotItem });
    if (!state.selected) say(ui.moveMessage, notice || MESSAGES.pick(slots.length), notice ? "notice" : null);
    if (refocus || notice) state.buttons[0].focus(); // the control used is gone: go on from the list
  }

  function slotItem(slot, start) {
    var pressed = state.selected && state.selected.id === slot.id;
    var item = kit.slotItem(slot, timeLabel.format(start), rep.time(slot.start_time), pressed, function () {
      pick(slot);
    });
    state.buttons.push(item.firstChild);
    return item;
  }

  function select(slot) {
    state.selected = slot;
    kit.pressSlot(state.buttons, slot);
    ui.moveConfirm.hidden = !slot;
    if (slot) ui.moveConfirm.textContent = "Move my meeting to " + when(slot);
  }

  function pick(slot) {
    if (state.busy) return;
    if (state.selected && state.selected.id === slot.id) {
      ui.moveConfirm.focus();
      return;
    }
    select(slot);
    placeHold(slot);
    ui.moveConfirm.focus();
  }

  /* Hold ``slot`` for this page, giving back the time held before. A 409 or 404
     says at once that the time was just taken; other failures go on without a
     hold (the move itself then says whether the time is still free). */
  function placeHold(slot) {
    say(ui.moveMessage, MESSAGES.holding(when(slot)), null);
    state.holds.place(slot, function (status) {
      if (status === 201) {
        say(ui.moveMessage, MESSAGES.held(when(slot)), null);
      } else if (status === 409 || status === 404) {
        select(null);
        loadSlots(MESSAGES.taken);
      } else {
        say(ui.moveMessage, "", null);
      }
    });
  }

  function move() {
    if (state.busy || !state.selected) return;
    var slot = state.selected;
    setBusy(true);
    say(ui.moveMessage, MESSAGES.moving, null);
    Promise.resolve(state.holds.pending).then(function () {
      if (state.panel !== "reschedule") {
        setBusy(false);
        return;
      }
      if (state.selected !== slot) return; // just taken: the list is being loaded again
      var payload = { slot_id: slot.id };
      var holdToken = state.holds.tokenFor(slot);
      if (holdToken) payload.hold_token = holdToken;
      var key = state.attempt.keyFor(payload); // the same again when this move is retried
      request("POST", bookingPath() + "/reschedule", {
        token: state.token, key: key, payload: payload
      }).then(function (answer) {
        setBusy(false);
        state.attempt.answered(answer.status);
        moved(answer, slot);
      }, function () {
        setBusy(false);
        say(ui.moveMessage, failure(0), "error");
      });
    });
  }

  function moved(answer, slot) {
    var body = answer.body;
    if (answer.status === 200 && body && body.slot) {
      state.holds.drop(); // it became the booking
      closePanels();
      show(body);
      say(ui.status, MESSAGES.moved(when(body.slot)), "notice");
      ui.title.focus();
    } else if ((answer.status === 409 || answer.status === 404) && kit.aboutSlot(body)) {
      state.holds.drop();
      state.holds.release();
      select(null);
      loadSlots(MESSAGES.taken);
    } else if (answer.status === 404 || answer.status === 401) {
      notFound();
    } else if (answer.status === 409) {
      // The booking itself cannot move (cancelled or started elsewhere): say why here.
      state.holds.release();
      select(null);
      clear(ui.days);
      state.buttons = [];
      ui.intro.hidden = true;
      say(ui.moveMessage, detail(body, MESSAGES.started), "error");
      ui.moveBack.textContent = "Close";
      ui.moveBack.focus();
      refresh();
    } else if (answer.status === 422) {
      say(ui.moveMessage, problem(body), "error");
    } else if (answer.status === 429) {
      tooMany(ui.moveMessage, ui.moveConfirm, answer);
    } else {
      say(ui.moveMessage, failure(answer.status), "error");
    }
  }

  // -- rate limits (scheduler_app/protect) --------------------------------------

  /* A 429: its message by the button, which stays off until Retry-After has
     passed (kit.countdown); the page never sends again by itself. */
  function tooMany(node, button, answer) {
    kit.countdown(parseInt(answer.retryAfter, 10) || 1, function (left) {
      button.disabled = left > 0;
      say(node, left > 0 ? kit.tooManyMessage(left) : kit.TRY_AGAIN_NOW, left > 0 ? "error" : null);
    });
  }

  // -- wiring -----------------------------------------------------------------

  ui.retry.addEventListener("click", function () { load(true); });
  ui.tokenForm.addEventListener("submit", function (event) {
    event.preventDefault();
    submitToken();
  });
  ui.tokenInput.addEventListener("input", function () {
    if (!state.busy) tokenSay("", false);
  });
  ui.cancelOpen.addEventListener("click", openCancel);
  function back(button) {
    closePanels();
    (ui.actions.hidden ? ui.title : button).focus();
  }

  ui.cancelBack.addEventListener("click", function () { back(ui.cancelOpen); });
  ui.cancelPanel.addEventListener("submit", function (event) {
    event.preventDefault();
    sendCancel();
  });
  ui.reason.addEventListener("input", function () { reasonError(null); });
  ui.rescheduleOpen.addEventListener("click", openReschedule);
  ui.slotsRetry.addEventListener("click", function () { loadSlots(undefined, true); });
  ui.moveConfirm.addEventListener("click", move);
  ui.moveBack.addEventListener("click", function () { back(ui.rescheduleOpen); });
  window.addEventListener("hashchange", function () { load(false); });
  load(false);
})();
