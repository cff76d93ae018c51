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
 * No dependencies. Text from the API is only ever inserted as text, and there
 * is no eval, inline script or inline style: the page runs under the same strict
 * Content-Security-Policy as /demo.
 */
(function () {
  "use strict";

  var TIMEOUT_MS = 15000;
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

  var dayKey = new Intl.DateTimeFormat("en-CA", { year: "numeric", month: "2-digit", day: "2-digit" });
  var dayLabel = new Intl.DateTimeFormat(undefined, { weekday: "long", day: "numeric", month: "long" });
  var dateLabel = new Intl.DateTimeFormat(undefined, {
    weekday: "long", day: "numeric", month: "long", year: "numeric"
  });
  var timeLabel = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit" });
  var visitorZone = new Intl.DateTimeFormat().resolvedOptions().timeZone;

  function $(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function clear(node) {
    while (node.firstChild) node.removeChild(node.firstChild);
  }

  function range(format, start, end) {
    return typeof format.formatRange === "function"
      ? format.formatRange(start, end)
      : format.format(start) + " \u2013 " + format.format(end);
  }

  function when(slot) {
    var start = new Date(slot.start_time);
    return dayLabel.format(start) + ", " + timeLabel.format(start);
  }

  /* The rep's time, in the zone the service names (SCHEDULER_TIMEZONE). */
  function repClock(zone) {
    var format = null;
    try {
      format = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", timeZone: zone || "UTC" });
    } catch (e) {
      zone = "UTC";
      format = new Intl.DateTimeFormat(undefined, { hour: "numeric", minute: "2-digit", timeZone: "UTC" });
    }
    return {
      name: (zone || "UTC").split("/").pop().replace(/_/g, " "),
      range: function (slot) { return range(format, new Date(slot.start_time), new Date(slot.end_time)); },
      time: function (slot) { return format.format(new Date(slot.start_time)); }
    };
  }

  /* An Idempotency-Key: a random UUID (crypto.randomUUID needs a secure context). */
  function newKey() {
    var crypto = window.crypto;
    if (crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    var bytes = new Uint8Array(16);
    crypto.getRandomValues(bytes);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return [hex.slice(0, 8), hex.slice(8, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20)].join("-");
  }

  /* fetch with a timeout; resolves {status, body} for any HTTP answer, rejects
     when there is none (network down, timed out). */
  function request(method, path, options) {
    options = options || {};
    var init = { method: method, credentials: "omit", cache: "no-store", headers: { Accept: "application/json" } };
    if (options.token) init.headers.Authorization = "Bearer " + options.token;
    if (options.key) init.headers["Idempotency-Key"] = options.key;
    if (options.payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.payload);
    }
    var timer = null;
    if (typeof AbortController === "function") {
      var controller = new AbortController();
      init.signal = controller.signal;
      timer = setTimeout(function () { controller.abort(); }, TIMEOUT_MS);
    }
    return fetch(base + path, init).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (body) {
        if (timer) clearTimeout(timer);
        return { status: response.status, body: body, retryAfter: response.headers.get("Retry-After") };
      });
    }, function (error) {
      if (timer) clearTimeout(timer);
      throw error;
    });
  }

  function detail(body, fallback) {
    return body && typeof body.detail === "string" ? body.detail : fallback;
  }

  /* A 422's words: its detail, or the messages of FastAPI's list of errors. */
  function problem(body) {
    var items = body && Array.isArray(body.detail) ? body.detail : [];
    var text = items.map(function (item) { return String(item.msg || "").replace(/^Value error, /, ""); }).join(" ");
    return text || detail(body, "The service could not accept this request.");
  }

  /* A 409 or 404 about the slot asked for ("Slot 4 is already booked."), not the booking. */
  function aboutSlot(body) {
    return /^Slot \d+ /.test(detail(body, ""));
  }

  function failure(status) {
    return status >= 500 ? MESSAGES.unavailable : MESSAGES.unreachable;
  }

  var root = $("manage");
  if (!root) return;
  var rep = repClock(root.getAttribute("data-rep-timezone"));

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
    hold: null, // {slotId, slot, id, token}: this page's live hold
    holdPending: null, // the answer of a hold being placed
    holdSeq: 0,
    attempt: null // {body, key}: the move last sent, while it may be retried
  };

  function say(node, text, tone) {
    node.textContent = text || "";
    node.classList.toggle("sw-status--error", tone === "error");
    node.classList.toggle("sw-status--notice", tone === "notice");
  }

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
    ui.rep.textContent = rep.range(slot) + " rep\u2019s time (" + rep.name + ")";
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
    releaseHold();
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
    ui.reasonError.textContent = message || "";
    ui.reasonError.hidden = !message;
    if (message) {
      ui.reason.setAttribute("aria-invalid", "true");
    } else {
      ui.reason.removeAttribute("aria-invalid");
    }
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
    if (state.hold && !slots.some(function (s) { return s.id === state.hold.slotId; })) {
      slots.push(state.hold.slot);
      slots.sort(function (a, b) { return new Date(a.start_time) - new Date(b.start_time); });
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
    ui.intro.textContent = "Times are in your time zone (" + visitorZone.replace(/_/g, " ") +
      "); the rep\u2019s time (" + rep.name + ") is in small type.";
    ui.intro.hidden = false;
    var list = null;
    var lastKey = null;
    slots.forEach(function (slot) {
      var start = new Date(slot.start_time);
      var key = dayKey.format(start);
      if (key !== lastKey) {
        lastKey = key;
        var day = el("div", "sw-day");
        var heading = el("h4", "sw-day-title", dayLabel.format(start));
        heading.id = "reschedule-day-" + key;
        day.setAttribute("role", "group");
        day.setAttribute("aria-labelledby", heading.id);
        list = el("ul", "sw-slots");
        day.appendChild(heading);
        day.appendChild(list);
        ui.days.appendChild(day);
      }
      list.appendChild(slotItem(slot, start));
    });
    if (!state.selected) say(ui.moveMessage, notice || MESSAGES.pick(slots.length), notice ? "notice" : null);
    if (refocus || notice) state.buttons[0].focus(); // the control used is gone: go on from the list
  }

  function slotItem(slot, start) {
    var item = el("li", "sw-slot-item");
    var button = el("button", "sw-slot");
    button.type = "button";
    button.setAttribute("aria-pressed", state.selected && state.selected.id === slot.id ? "true" : "false");
    button.appendChild(el("span", "sw-time", timeLabel.format(start)));
    var repTime = el("span", "sw-rep", rep.time(slot));
    repTime.appendChild(el("span", "sw-visually-hidden", " rep\u2019s time"));
    button.appendChild(el("span", "sw-visually-hidden", " your time, "));
    button.appendChild(repTime);
    button.addEventListener("click", function () { pick(slot); });
    button.slotId = slot.id;
    state.buttons.push(button);
    item.appendChild(button);
    return item;
  }

  function select(slot) {
    state.selected = slot;
    state.buttons.forEach(function (button) {
      button.setAttribute("aria-pressed", slot && button.slotId === slot.id ? "true" : "false");
    });
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
    releaseHold();
    var seq = state.holdSeq;
    say(ui.moveMessage, MESSAGES.holding(when(slot)), null);
    state.holdPending = request("POST", "/holds", { payload: { slot_id: slot.id } }).then(function (answer) {
      var body = answer.body;
      if (seq !== state.holdSeq) { // picked another time meanwhile: give this one back
        if (answer.status === 201 && body) sendRelease(body.hold_id, body.hold_token);
        return;
      }
      state.holdPending = null;
      if (answer.status === 201 && body && body.hold_token) {
        state.hold = { slotId: slot.id, slot: slot, id: body.hold_id, token: body.hold_token };
        say(ui.moveMessage, MESSAGES.held(when(slot)), null);
      } else if (answer.status === 409 || answer.status === 404) {
        select(null);
        loadSlots(MESSAGES.taken);
      } else {
        say(ui.moveMessage, "", null);
      }
    }, function () {
      if (seq === state.holdSeq) {
        state.holdPending = null;
        say(ui.moveMessage, "", null);
      }
    });
  }

  function sendRelease(id, token) {
    request("DELETE", "/holds/" + encodeURIComponent(id), { token: token }).catch(function () {});
  }

  /* Give back the held time (it would run out by itself in a few minutes). */
  function releaseHold() {
    state.holdSeq += 1;
    state.holdPending = null;
    if (state.hold) {
      sendRelease(state.hold.id, state.hold.token);
      state.hold = null;
    }
  }

  /* The Idempotency-Key of a move: a new one for a new move, the same one
     while the same move is retried after a network error or a 5xx. */
  function attemptKey(payload) {
    var body = JSON.stringify(payload);
    if (!state.attempt || state.attempt.body !== body) state.attempt = { body: body, key: newKey() };
    return state.attempt.key;
  }

  function move() {
    if (state.busy || !state.selected) return;
    var slot = state.selected;
    setBusy(true);
    say(ui.moveMessage, MESSAGES.moving, null);
    Promise.resolve(state.holdPending).then(function () {
      if (state.panel !== "reschedule") {
        setBusy(false);
        return;
      }
      if (state.selected !== slot) return; // just taken: the list is being loaded again
      var payload = { slot_id: slot.id };
      if (state.hold && state.hold.slotId === slot.id) payload.hold_token = state.hold.token;
      var key = attemptKey(payload);
      request("POST", bookingPath() + "/reschedule", {
        token: state.token, key: key, payload: payload
      }).then(function (answer) {
        setBusy(false);
        if (answer.status < 500) state.attempt = null;
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
      state.hold = null; // it became the booking
      closePanels();
      show(body);
      say(ui.status, MESSAGES.moved(when(body.slot)), "notice");
      ui.title.focus();
    } else if ((answer.status === 409 || answer.status === 404) && aboutSlot(body)) {
      state.hold = null;
      releaseHold();
      select(null);
      loadSlots(MESSAGES.taken);
    } else if (answer.status === 404 || answer.status === 401) {
      notFound();
    } else if (answer.status === 409) {
      // The booking itself cannot move (cancelled or started elsewhere): say why here.
      releaseHold();
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
     passed (counting down); the page never sends again by itself. */
  function tooMany(node, button, answer) {
    var until = Date.now() + (parseInt(answer.retryAfter, 10) || 1) * 1000;
    function tick() {
      var left = Math.ceil((until - Date.now()) / 1000);
      button.disabled = left > 0;
      say(node, left > 0
        ? "Too many attempts from your connection. You can try again in " + left +
          (left === 1 ? " second." : " seconds.")
        : "You can try again now.", left > 0 ? "error" : null);
      if (left <= 0) clearInterval(timer);
    }
    var timer = setInterval(tick, 1000);
    tick();
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
