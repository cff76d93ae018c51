/*
 * scheduler-app booking widget. Embed it with one element and one tag:
 *
 *   <div data-scheduler-api="https://book.example.com"></div>
 *   <script src="https://book.example.com/widget.js" defer></script>
 *
 * and list the page's origin in the API's SCHEDULER_CORS_ORIGINS. An empty
 * data-scheduler-api means the origin widget.js came from. Optional:
 * data-scheduler-timezone="America/New_York" names the rep's time zone
 * (otherwise the rep's time is read from the offsets the API sends).
 *
 * No dependencies but kit.js and kit.css, the pages' shared helpers and
 * controls, which the widget loads itself from its own origin, as it loads
 * widget.css. Text from the API is only ever inserted as text, and there
 * is no eval, inline script, inline style or inline event handler, so the
 * widget runs under a strict Content-Security-Policy that allows the API's
 * origin in script-src, style-src and connect-src.
 *
 * Picking a time holds it (POST /holds) so that nobody takes it while the
 * visitor types; picking another releases it (DELETE /holds/{id}). Book sends
 * the hold's token, an Idempotency-Key (one per attempt, the same again when a
 * network error or a 5xx is retried), the visitor's time zone and where they
 * came from (the host page's utm_* parameters and referrer). The confirmation
 * shows the reference, a "Manage or cancel" link and "Add to calendar".
 */
(function () {
  "use strict";

  var script = document.currentScript;
  var scriptOrigin = script && script.src
    ? new URL(script.src, document.baseURI).origin
    : window.location.origin;
  var counter = 0;

  var MESSAGES = {
    loading: "Loading free times\u2026",
    booking: "Booking your meeting\u2026",
    pick: function (count) {
      return count === 1
        ? "1 free time. Pick it, then enter your email."
        : count + " free times. Pick one, then enter your email.";
    },
    empty: "There are no free times right now. Please check again later.",
    taken: "Sorry, that time was just taken. Please pick another one.",
    unreachable: "We could not reach the booking service. Please check your connection and try again.",
    unavailable: "The booking service is not available right now. Please try again in a moment.",
    checkEmail: "Please check your email address.",
    noEmail: "Please enter your email address.",
    noSlot: "Please pick a time first.",
    seeEmail: "Please see the note by your email address.",
    held: "Held for you for a few minutes.",
    calendarLoading: "Getting the invitation\u2026",
    calendarDone: "The invitation is downloaded: open it to add the meeting to your calendar.",
    calendarMissing: "The invitation is not available right now. Please use the manage link instead."
  };

  // The kit's helpers (kit.js): set by start(), before any widget is made.
  var el, clear, range, visitorZone, formats, dayLabel, dateLabel, timeLabel, kit;

  function Widget(root) {
    var self = this;
    counter += 1;
    this.root = root;
    this.api = (root.getAttribute("data-scheduler-api") || scriptOrigin).replace(/\/+$/, "");
    this.rep = new kit.RepClock(root.getAttribute("data-scheduler-timezone"));
    this.prefix = "scheduler-widget-" + counter;
    this.slots = [];
    this.buttons = [];
    this.selected = null;
    this.busy = false;
    this.acting = false; // a visitor's click is being answered: move focus where it helps
    this.holds = new kit.Holds(function (method, path, payload, token) { // the time this widget holds
      return self.request(method, path, payload, token ? { Authorization: "Bearer " + token } : undefined);
    });
    this.attempt = new kit.Attempt(); // the booking last sent, while it may be retried
    this.liveVersion = null; // the feed version the list is at (see "Live availability")
    this.liveEtag = null;
    this.liveLog = [];
    this.build();
    this.load();
  }

  Widget.prototype.build = function () {
    var self = this;
    var root = this.root;
    clear(root); // drop any fallback content the page put inside
    root.classList.add("scheduler-widget");
    root.setAttribute("role", "region");
    if (!root.hasAttribute("aria-label")) root.setAttribute("aria-label", "Book a meeting");

    this.status = el("p", "sw-status");
    this.status.setAttribute("role", "status");
    this.status.setAttribute("aria-live", "polite");

    this.retry = el("button", "sw-button sw-button--secondary sw-retry", "Try again");
    this.retry.type = "button";
    this.retry.hidden = true;
    this.retry.addEventListener("click", function () {
      self.acting = true;
      self.load();
    });

    this.intro = el("p", "sw-intro");
    this.intro.hidden = true;
    this.days = el("div", "sw-days");

    this.form = el("form", "sw-form");
    this.form.noValidate = true; // the API checks the email; its answer is shown by the field
    this.form.hidden = true;
    this.choice = el("p", "sw-choice");
    var emailId = this.prefix + "-email";
    var errorId = this.prefix + "-email-error";
    var label = el("label", "sw-label", "Your email");
    label.htmlFor = emailId;
    this.email = el("input", "sw-input");
    this.email.type = "email";
    this.email.id = emailId;
    this.email.name = "email";
    this.email.autocomplete = "email";
    this.email.required = true;
    this.email.setAttribute("aria-describedby", errorId);
    this.emailError = el("p", "sw-field-error");
    this.emailError.id = errorId;
    this.emailError.hidden = true;
    this.submit = el("button", "sw-button sw-submit", "Book this time");
    this.submit.type = "submit";
    this.form.appendChild(this.choice);
    this.form.appendChild(label);
    this.form.appendChild(this.email);
    this.form.appendChild(this.emailError);
    this.form.appendChild(this.submit);
    this.guardForm(); // bot protection: the honeypot and the wait note (below)
    this.form.addEventListener("submit", function (event) {
      event.preventDefault();
      self.book();
    });
    this.email.addEventListener("input", function () { self.fieldError(null); });

    this.confirmation = el("div", "sw-confirmation");
    this.confirmation.tabIndex = -1;
    this.confirmation.hidden = true;

    [this.status, this.retry, this.intro, this.days, this.form, this.confirmation].forEach(function (node) {
      root.appendChild(node);
    });
  };

  Widget.prototype.say = function (text, tone) {
    kit.say(this.status, text, tone);
  };

  Widget.prototype.setBusy = function (busy) {
    this.busy = busy;
    this.root.setAttribute("aria-busy", busy ? "true" : "false");
    this.submit.disabled = busy;
    this.buttons.forEach(function (button) { button.disabled = busy; });
  };

  /* kit.request to this widget's API: resolves {status, body, etag, ...} for
     any HTTP answer, rejects when there is none. */
  Widget.prototype.request = function (method, path, payload, headers) {
    return kit.request(method, this.api + path, { mode: "cors", payload: payload, headers: headers });
  };

  Widget.prototype.fail = function (status) {
    this.setBusy(false);
    this.say(kit.failure(status, MESSAGES), "error");
    this.retry.textContent = "Try again";
    this.retry.hidden = false;
    if (this.acting) this.retry.focus();
    this.acting = false;
  };

  Widget.prototype.load = function (notice) {
    var self = this;
    this.retry.hidden = true;
    this.setBusy(true);
    this.say(notice || MESSAGES.loading, notice ? "notice" : null);
    this.request("GET", "/availability").then(function (answer) {
      if (answer.status === 200 && Array.isArray(answer.body)) {
        self.render(answer.body, notice);
        self.liveListed(answer.etag); // then follow it live (see "Live availability")
      } else {
        self.fail(answer.status);
      }
    }, function () {
      self.fail(0);
    });
  };

  Widget.prototype.render = function (slots, notice) {
    var self = this;
    slots = this.withHeldSlot(slots);
    this.slots = slots;
    this.buttons = [];
    var stillFree = this.selected && slots.some(function (s) { return s.id === self.selected.id; });
    if (!stillFree) {
      this.holds.release();
      this.select(null);
    }
    clear(this.days);
    this.setBusy(false);

    if (!slots.length) {
      this.intro.hidden = true;
      this.say(notice ? notice + " " + MESSAGES.empty : MESSAGES.empty, notice ? "notice" : null);
      this.retry.textContent = "Check again";
      this.retry.hidden = false;
      if (this.acting) this.retry.focus();
      this.acting = false;
      return;
    }
    this.intro.textContent = kit.zonesIntro(this.rep.label(slots[0].start_time));
    this.intro.hidden = false;

    kit.slotDays(this.days, slots, {
      formats: formats, heading: "h3", idPrefix: this.prefix + "-day-",
      item: function (slot, start) { return self.slotItem(slot, start); }
    });
    this.say(notice || MESSAGES.pick(slots.length), notice ? "notice" : null);
    if (this.acting) {
      // The control that was used is gone or hidden: go on from the list or the form.
      (this.selected ? this.submit : this.buttons[0]).focus();
    }
    this.acting = false;
  };

  Widget.prototype.slotItem = function (slot, start) {
    var self = this;
    var pressed = this.selected && this.selected.id === slot.id;
    var item = kit.slotItem(slot, timeLabel.format(start), this.rep.time(slot.start_time), pressed, function () {
      self.pick(slot);
      self.email.focus();
    });
    this.buttons.push(item.firstChild);
    return item;
  };

  Widget.prototype.select = function (slot) {
    this.selected = slot;
    kit.pressSlot(this.buttons, slot);
    this.form.hidden = !slot;
    if (slot) {
      this.formShown(); // bot protection: the form's token, from its first showing
      var start = new Date(slot.start_time);
      clear(this.choice);
      this.choice.appendChild(el("span", "sw-choice-day", dayLabel.format(start) + ", "));
      this.choice.appendChild(el("span", "sw-choice-time", range(timeLabel, start, new Date(slot.end_time))));
    }
  };

  Widget.prototype.fieldError = function (message) {
    kit.fieldError(this.emailError, message, [this.email]);
  };

  Widget.prototype.book = function () {
    var self = this;
    if (this.busy) return;
    if (!this.selected) {
      this.say(MESSAGES.noSlot, "error");
      return;
    }
    var email = this.email.value.trim();
    if (!email) {
      this.fieldError(MESSAGES.noEmail);
      this.say(MESSAGES.checkEmail, "error");
      this.email.focus();
      return;
    }
    this.fieldError(null);
    this.retry.hidden = true;
    this.acting = true;
    this.setBusy(true);
    this.say(MESSAGES.booking, null);
    var slot = this.selected;
    // After the hold's answer (a time just taken is listed again instead of booked)
    // and once the bot protection is ready (below).
    Promise.all([this.holds.pending, this.formReady()]).then(function () {
      if (self.selected !== slot) return;
      var payload = self.bookingPayload(slot, email);
      var headers = { "Idempotency-Key": self.attempt.keyFor(payload) };
      return self.request("POST", "/book", self.guarded(payload), headers).then(function (answer) {
        self.challengeSpent();
        self.attempt.answered(answer.status); // answered: a new attempt gets a new key
        if (answer.status === 200 && answer.body && answer.body.slot) {
          self.holds.drop(); // it is the booking now
          self.confirm(answer.body.slot, answer.body.booking);
        } else if (answer.status === 404 || (answer.status === 409 && slotRefusal(answer.body))) {
          self.holds.release();
          self.select(null);
          self.load(MESSAGES.taken);
        } else if (answer.status === 409) {
          self.refused(answer.body);
        } else if (self.guardAnswer(answer)) {
          // 429, 403 or a 422 of the bot protection: said by the button
        } else if (answer.status === 422) {
          self.invalid(answer.body);
        } else {
          self.fail(answer.status);
        }
      }, function () {
        self.fail(0);
      });
    });
  };

  /* FastAPI's 422: {"detail": [{"loc": ["body", "email"], "msg": "..."}, ...]} */
  Widget.prototype.invalid = function (body) {
    this.setBusy(false);
    this.acting = false;
    var emailMessages = [];
    var others = [];
    kit.invalidItems(body).forEach(function (item) {
      var text = item.text || "is not valid";
      text = text.charAt(0).toUpperCase() + text.slice(1);
      (item.field === "email" ? emailMessages : others).push(text);
    });
    if (emailMessages.length) {
      this.fieldError(emailMessages.join(" "));
      this.say(MESSAGES.checkEmail, "error");
      this.email.focus();
    } else {
      this.say(others.length ? others.join(" ") : MESSAGES.unavailable, "error");
    }
  };

  Widget.prototype.confirm = function (slot, booking) {
    this.setBusy(false);
    this.acting = false;
    var start = new Date(slot.start_time);
    var end = new Date(slot.end_time);
    clear(this.confirmation);
    this.confirmation.appendChild(el("h3", "sw-confirmation-title", "You\u2019re booked"));
    this.confirmation.appendChild(el("p", "sw-confirmation-date", dateLabel.format(start)));
    this.confirmation.appendChild(el("p", "sw-confirmation-time",
      range(timeLabel, start, end) + " your time"));
    this.confirmation.appendChild(el("p", "sw-rep",
      this.rep.range(slot.start_time, slot.end_time) + " rep\u2019s time (" + this.rep.label(slot.start_time) + ")"));
    if (slot.booked_by_email) {
      this.confirmation.appendChild(el("p", "sw-confirmation-email", "Booked for " + slot.booked_by_email + "."));
    }
    if (booking) this.confirmBooking(booking);
    this.say("", null);
    this.status.hidden = true;
    this.intro.hidden = true;
    this.days.hidden = true;
    this.form.hidden = true;
    this.retry.hidden = true;
    this.confirmation.hidden = false;
    this.confirmation.focus();
  };

  /* -- Holds, Idempotency-Key, source, manage link and "Add to calendar" ------ */

  /* A 409 about the slot ("Slot 4 is already booked.", "... is held by another
     visitor ..."), not about the lead (their limit of upcoming bookings). */
  function slotRefusal(body) {
    return kit.detail(body, null) === null || kit.aboutSlot(body);
  }

  /* ``value`` trimmed, at most ``limit`` characters (code points, as the API counts). */
  function cut(value, limit) {
    return value ? Array.from(value.trim()).slice(0, limit).join("") : "";
  }

  var UTM = ["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"];

  /* Where the visitor came from: the host page's utm_* parameters and its
     referrer (only an http(s) one); null when there is none of them. */
  function captureSource() {
    var source = {};
    var params = new URLSearchParams(window.location.search);
    UTM.forEach(function (name) {
      var value = cut(params.get(name), 200);
      if (value) source[name] = value;
    });
    var referrer = cut(document.referrer, 2000);
    if (/^https?:\/\//.test(referrer)) source.referrer = referrer;
    return Object.keys(source).length ? source : null;
  }

  /* The time this widget holds is no longer listed as free; it is still the visitor's pick. */
  Widget.prototype.withHeldSlot = function (slots) {
    var hold = this.holds.held;
    if (!hold || !(hold.expires > Date.now()) || slots.some(function (s) { return s.id === hold.slotId; })) {
      return slots;
    }
    return kit.byStart(slots.concat([hold.slot]));
  };

  Widget.prototype.pick = function (slot) {
    if (this.selected && this.selected.id === slot.id) return;
    this.select(slot);
    this.placeHold(slot);
  };

  /* Hold ``slot``, giving back the time held before. A 409 or 404 says at once
     that the time was just taken; other failures go on without a hold (Book
     then says whether the time is still free). */
  Widget.prototype.placeHold = function (slot) {
    var self = this;
    this.holds.place(slot, function (status) {
      if (status === 201) {
        if (self.selected === slot) self.choice.appendChild(el("span", "sw-choice-held", " " + MESSAGES.held));
      } else if (status === 409 || status === 404) {
        self.select(null);
        self.acting = true; // the form goes away: the focus goes to the list
        self.load(MESSAGES.taken);
      }
    });
  };

  Widget.prototype.bookingPayload = function (slot, email) {
    var payload = { slot_id: slot.id, email: email };
    if (visitorZone) payload.timezone = visitorZone;
    var holdToken = this.holds.tokenFor(slot);
    if (holdToken) payload.hold_token = holdToken;
    var source = captureSource();
    if (source) payload.source = source;
    return payload;
  };

  /* A 409 about the lead (their limit of upcoming bookings): said by the email. */
  Widget.prototype.refused = function (body) {
    this.setBusy(false);
    this.acting = false;
    this.fieldError(body.detail);
    this.say(MESSAGES.seeEmail, "error");
    this.email.focus();
  };

  /* The booking's reference, its manage link and "Add to calendar". */
  Widget.prototype.confirmBooking = function (booking) {
    var self = this;
    if (!booking.reference) return;
    this.confirmation.appendChild(el("p", "sw-confirmation-reference", "Reference: " + booking.reference));
    var actions = el("div", "sw-confirmation-actions");
    if (typeof booking.manage_url === "string" && /^https?:\/\//.test(booking.manage_url)) {
      var manage = el("a", "sw-button sw-button--secondary sw-manage-link", "Manage or cancel");
      manage.href = booking.manage_url;
      manage.rel = "noreferrer";
      actions.appendChild(manage);
    }
    var message = el("p", "sw-calendar-status");
    message.setAttribute("role", "status");
    message.setAttribute("aria-live", "polite");
    if (booking.token) {
      var calendar = el("button", "sw-button sw-button--secondary sw-calendar", "Add to calendar");
      calendar.type = "button";
      calendar.addEventListener("click", function () { self.addToCalendar(booking, calendar, message); });
      actions.appendChild(calendar);
    }
    this.confirmation.appendChild(actions);
    this.confirmation.appendChild(message);
  };

  /* Download the booking's invitation (GET /bookings/{reference}/invite.ics with
     the manage token) and offer it as booking-<reference>.ics. */
  Widget.prototype.addToCalendar = function (booking, button, message) {
    var self = this;
    button.disabled = true;
    message.classList.remove("sw-status--error");
    message.textContent = MESSAGES.calendarLoading;
    var path = "/bookings/" + encodeURIComponent(booking.reference) + "/invite.ics";
    kit.request("GET", this.api + path, {
      mode: "cors", token: booking.token, accept: "text/calendar", blob: true
    }).then(function (answer) {
      button.disabled = false;
      if (answer.status !== 200) {
        message.textContent = answer.status >= 500 ? MESSAGES.unavailable : MESSAGES.calendarMissing;
        message.classList.add("sw-status--error");
        return;
      }
      var name = "booking-" + booking.reference + ".ics";
      kit.download(new Blob([answer.body], { type: "text/calendar" }), name, self.root, 60000);
      message.textContent = MESSAGES.calendarDone;
    }, function () {
      button.disabled = false;
      message.textContent = MESSAGES.unreachable;
      message.classList.add("sw-status--error");
    });
  };

  /* -- Live availability ------------------------------------------------------
     One EventSource per page and API (GET /availability/stream), shared by the
     widgets of that API, opened after the first list with ?since= its version
     (read from the list's ETag). Each widget applies the `slot` events after
     its version, in version order; a `resync`, or a `ping` newer than what it
     has, makes it fetch the list again (with If-None-Match). A stream silent
     for 45 s is opened again. While the stream does not work (a 503, a proxy's
     error page, no network) the widgets poll the list, backing off, and the
     stream is tried again at each poll. After a minute hidden the stream is
     closed; shown again, it resumes from the widgets' version. The root
     element's data-scheduler-live says open, polling or paused. */

  var LIVE = {
    watchdogMs: 45000,
    hiddenCloseMs: 60000,
    pollFirstMs: 2000,
    pollMaxMs: 30000,
    logSize: 500 // events kept to replay onto a list that arrives older than them
  };
  var feeds = {}; // API origin -> Feed

  /* The feed version in one of GET /availability's ETags ("<version>-<digest>"). */
  function etagVersion(etag) {
    var m = /^(?:W\/)?"(\d+)-/.exec(etag || "");
    return m ? parseInt(m[1], 10) : null;
  }

  function Feed(api) {
    var self = this;
    this.api = api;
    this.widgets = [];
    this.source = null;
    this.known = null; // the newest version heard
    this.watchdog = null;
    this.pollTimer = null;
    this.pollDelay = LIVE.pollFirstMs;
    this.hiddenTimer = null;
    this.paused = false;
    document.addEventListener("visibilitychange", function () { self.visibility(); });
  }

  Feed.of = function (api) {
    if (!feeds[api]) feeds[api] = new Feed(api);
    return feeds[api];
  };

  Feed.prototype.state = function (state) {
    this.widgets.forEach(function (widget) { widget.root.setAttribute("data-scheduler-live", state); });
  };

  Feed.prototype.attach = function (widget) {
    if (this.widgets.indexOf(widget) < 0) this.widgets.push(widget);
    if (this.paused) return;
    if (!this.source && !this.pollTimer) {
      this.open();
    } else {
      widget.root.setAttribute("data-scheduler-live", this.pollTimer ? "polling" : "open");
      if (this.known !== null && widget.liveVersion < this.known) widget.liveRefetch();
    }
  };

  Feed.prototype.detach = function (widget) {
    this.widgets = this.widgets.filter(function (w) { return w !== widget; });
    widget.root.removeAttribute("data-scheduler-live");
    if (!this.widgets.length) this.stop();
  };

  /* The oldest version among the widgets: the stream starts after it. */
  Feed.prototype.since = function () {
    var since = null;
    this.widgets.forEach(function (widget) {
      var version = widget.liveVersion;
      if (typeof version === "number" && (since === null || version < since)) since = version;
    });
    return since;
  };

  Feed.prototype.open = function () {
    var self = this;
    this.closeSource();
    if (typeof EventSource !== "function") {
      this.failed();
      return;
    }
    var since = this.since();
    var source = new EventSource(this.api + "/availability/stream" + (since !== null ? "?since=" + since : ""));
    this.source = source;
    this.armWatchdog();
    source.addEventListener("open", function () {
      if (self.source !== source) return;
      self.pollDelay = LIVE.pollFirstMs;
      clearTimeout(self.pollTimer);
      self.pollTimer = null;
      self.state("open");
      self.armWatchdog();
    });
    source.addEventListener("slot", function (event) {
      if (self.source !== source) return;
      self.armWatchdog();
      var version = parseInt(event.lastEventId, 10);
      var change;
      try { change = JSON.parse(event.data); } catch (e) { return; }
      if (!(version > 0) || !change) return;
      self.known = Math.max(self.known || 0, version);
      self.widgets.slice().forEach(function (widget) { widget.liveSlot(version, change); });
    });
    source.addEventListener("ping", function (event) {
      if (self.source !== source) return;
      self.armWatchdog();
      var version = null;
      try { version = JSON.parse(event.data).version; } catch (e) { return; }
      if (typeof version !== "number") return;
      self.known = Math.max(self.known || 0, version);
      self.widgets.forEach(function (widget) {
        if (widget.liveVersion === null || version > widget.liveVersion) widget.liveRefetch();
      });
    });
    source.addEventListener("resync", function () {
      if (self.source !== source) return;
      self.armWatchdog();
      self.widgets.forEach(function (widget) { widget.liveRefetch(); });
    });
    source.addEventListener("error", function () {
      if (self.source !== source) return;
      if (source.readyState === 2) { // CLOSED: a 503 or an error page; no retry by itself
        self.closeSource();
      }
      self.failed();
    });
  };

  /* The stream does not work: poll the list, backing off, and try it again at each poll. */
  Feed.prototype.failed = function () {
    var self = this;
    if (this.pollTimer || this.paused) return;
    this.state("polling");
    var delay = this.pollDelay * (1 + Math.random() / 2);
    this.pollDelay = Math.min(this.pollDelay * 2, LIVE.pollMaxMs);
    this.pollTimer = setTimeout(function () {
      self.pollTimer = null;
      self.widgets.forEach(function (widget) { widget.liveRefetch(); });
      if (!self.source) {
        self.open(); // its error, if any, schedules the next poll
      } else if (self.source.readyState !== 1) {
        self.failed(); // the browser is still reconnecting by itself
      }
    }, delay);
  };

  Feed.prototype.armWatchdog = function () {
    var self = this;
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(function () {
      if (!self.paused) self.open(); // silent too long: a dead connection no error reports
    }, LIVE.watchdogMs);
  };

  Feed.prototype.closeSource = function () {
    clearTimeout(this.watchdog);
    this.watchdog = null;
    if (this.source) {
      this.source.close();
      this.source = null;
    }
  };

  Feed.prototype.stop = function () {
    this.closeSource();
    clearTimeout(this.pollTimer);
    this.pollTimer = null;
  };

  Feed.prototype.visibility = function () {
    var self = this;
    clearTimeout(this.hiddenTimer);
    if (document.hidden) {
      this.hiddenTimer = setTimeout(function () {
        self.paused = true;
        self.stop();
        self.state("paused");
      }, LIVE.hiddenCloseMs);
    } else if (this.paused) {
      this.paused = false;
      this.pollDelay = LIVE.pollFirstMs;
      if (this.widgets.length) this.open(); // ?since= the widgets' version: what was missed
    }
  };

  /* A list was drawn (by load or liveRefetch), at the version in its ETag. */
  Widget.prototype.liveListed = function (etag) {
    var version = etagVersion(etag);
    if (version === null) return; // not a versioned list: nothing to follow
    this.liveEtag = etag;
    var log = this.liveLog || [];
    if (typeof this.liveVersion === "number" && version < this.liveVersion) {
      // Older than events already applied: apply them again on top of it.
      this.liveApply(log.filter(function (entry) { return entry.v > version; })
        .map(function (entry) { return entry.change; }));
    } else {
      this.liveVersion = version;
      this.liveLog = log.filter(function (entry) { return entry.v > version; });
    }
    Feed.of(this.api).attach(this);
  };

  Widget.prototype.liveSlot = function (version, change) {
    if (!this.confirmation.hidden) { // booked: nothing more to follow
      Feed.of(this.api).detach(this);
      return;
    }
    if (typeof this.liveVersion === "number" && version <= this.liveVersion) return;
    this.liveVersion = version;
    this.liveLog = (this.liveLog || []).concat([{ v: version, change: change }]).slice(-LIVE.logSize);
    this.liveApply([change]);
  };

  /* The list after ``changes`` ({id, start_time, end_time, state}, in version order). */
  Widget.prototype.liveApply = function (changes) {
    var self = this;
    var slots = this.slots.slice();
    var taken = false;
    changes.forEach(function (change) {
      // This visitor's own hold, or their own booking whose answer is still to
      // come (or was lost: "Try again" replays it): not taken by someone else.
      if ((change.state === "held" || change.state === "booked") && self.liveMine(change.id)) return;
      slots = slots.filter(function (slot) { return slot.id !== change.id; });
      if (change.state === "free" || change.state === "added") {
        if (Date.parse(change.start_time) > Date.now()) {
          slots.push({ id: change.id, start_time: change.start_time, end_time: change.end_time,
                       is_booked: false, booked_by_email: null });
        }
      } else if (self.selected && self.selected.id === change.id) {
        taken = true; // booked, held or removed by someone else while this visitor types
      }
    });
    kit.byStart(slots);
    this.liveRender(slots, taken ? MESSAGES.taken : undefined);
  };

  /* Whether slot ``id`` is this visitor's pick, held (or being held) by them or
     in a booking attempt of theirs: only they can have held or booked it. */
  Widget.prototype.liveMine = function (id) {
    if (!this.selected || this.selected.id !== id) return false;
    if (this.holds.mine(id)) return true;
    var sent = this.attempt.pending();
    return Boolean(sent && sent.slot_id === id);
  };

  /* Draw ``slots`` without disturbing the visitor: the focused time keeps the
     focus, and a message that is not the list's own stays. */
  Widget.prototype.liveRender = function (slots, notice) {
    if (this.busy || !this.confirmation.hidden) {
      this.slots = slots; // a booking is being answered: its outcome draws what follows
      return;
    }
    var active = document.activeElement;
    var focusedSlot = active && active.slotId;
    var message = kit.toneOf(this.status);
    var text = this.status.textContent;
    if (notice && this.form.contains(active)) this.acting = true; // the form goes: focus the list
    this.render(slots, notice);
    if (!notice && message) this.say(text, message);
    if (focusedSlot) {
      this.buttons.forEach(function (button) { if (button.slotId === focusedSlot) button.focus(); });
    }
  };

  /* Fetch the list again, quietly; one at a time (a request meanwhile runs after it). */
  Widget.prototype.liveRefetch = function () {
    var self = this;
    if (!this.confirmation.hidden) return;
    if (this.liveFetching) {
      this.liveAgain = true;
      return;
    }
    this.liveFetching = true;
    var headers = this.liveEtag ? { "If-None-Match": this.liveEtag } : {};
    this.request("GET", "/availability", undefined, headers).then(function (answer) {
      self.liveFetching = false;
      if (answer.status === 200 && Array.isArray(answer.body)) {
        var chosen = self.selected;
        var slots = answer.body;
        var listed = chosen && slots.some(function (slot) { return slot.id === chosen.id; });
        var taken = false;
        if (chosen && !listed) {
          if (self.liveMine(chosen.id)) { // theirs (held, or booked by an answer not yet seen)
            slots = kit.byStart(slots.concat([chosen]));
          } else {
            taken = true;
          }
        }
        self.liveRender(slots, taken ? MESSAGES.taken : undefined);
        self.liveListed(answer.etag);
      }
      if (self.liveAgain) {
        self.liveAgain = false;
        self.liveRefetch();
      }
    }, function () {
      self.liveFetching = false;
      self.liveAgain = false;
    });
  };

  /* -- Bot protection (scheduler_app/protect) ----------------------------------
     A honeypot field hidden from people and assistive technology; the form's
     token from GET /form, sent no sooner than its minimum fill time (so a person
     never meets the time trap); an ALTCHA proof of work solved in the background
     when the service asks for it; a 429, 403 or a protection's 422 said next to
     the button, which waits for Retry-After (the widget never retries by itself). */

  var GUARD_MESSAGES = {
    check: "Please wait while we check this form is sent by a person\u2026"
  };

  Widget.prototype.guardForm = function () {
    var trap = el("div", "sw-trap"); // off screen (widget.css), not display:none, which bots look for
    trap.setAttribute("aria-hidden", "true");
    var label = el("label", null, "Leave this field empty");
    this.trap = el("input");
    this.trap.type = "text";
    this.trap.name = "website";
    this.trap.id = this.prefix + "-website";
    this.trap.tabIndex = -1;
    this.trap.autocomplete = "off";
    label.htmlFor = this.trap.id;
    trap.appendChild(label);
    trap.appendChild(this.trap);
    this.form.appendChild(trap);
    this.waitNote = el("p", "sw-wait");
    this.waitNote.setAttribute("role", "status");
    this.waitNote.hidden = true;
    this.form.appendChild(this.waitNote);
    this.guard = null; // {received, form, challenge}: what GET /form answered
    this.waitUntil = 0;
    var self = this;
    // Registered before the form's own listener: while a 429's Retry-After runs,
    // a submit (the Enter key) sends nothing.
    this.form.addEventListener("submit", function (event) {
      if (Date.now() < self.waitUntil) {
        event.preventDefault();
        event.stopImmediatePropagation();
      } else {
        self.waitNote.hidden = true;
      }
    });
  };

  /* Ask GET /form once, when the form is first shown. Without an answer (an older
     service, a network error) the form is sent without a token, as before. */
  Widget.prototype.formShown = function () {
    var self = this;
    if (this.guardPending) return;
    this.guardPending = this.request("GET", "/form").then(function (answer) {
      if (answer.status !== 200 || !answer.body) return;
      self.guard = { received: Date.now(), form: answer.body, challenge: null };
      if (answer.body.altcha) self.solveChallenge();
    }, function () {});
  };

  /* Resolves when the form may be sent: its minimum fill time passed since the
     token came, and the ALTCHA solved when asked for. */
  Widget.prototype.formReady = function () {
    var self = this;
    if (!this.guardPending) this.formShown();
    return this.guardPending.then(function () {
      var guard = self.guard;
      if (!guard) return null;
      var left = (guard.form.min_fill_seconds || 0) * 1000 + 150 - (Date.now() - guard.received);
      var waited = left > 0 ? new Promise(function (resolve) { setTimeout(resolve, left); }) : null;
      if (guard.form.altcha && !guard.challenge) self.solveChallenge();
      if (guard.challenge && !guard.solution) self.say(GUARD_MESSAGES.check, null);
      return Promise.all([waited, guard.challenge]);
    });
  };

  Widget.prototype.guarded = function (payload) {
    var guarded = {};
    Object.keys(payload).forEach(function (name) { guarded[name] = payload[name]; });
    var guard = this.guard;
    if (this.trap && this.trap.value) guarded.website = this.trap.value;
    if (guard && guard.form.form_token) guarded.form_token = guard.form.form_token;
    if (guard && guard.solution) guarded.altcha = guard.solution;
    return guarded;
  };

  /* A solved challenge is accepted once: after each attempt, solve a new one. */
  Widget.prototype.challengeSpent = function () {
    var guard = this.guard;
    if (guard && guard.solution) {
      guard.solution = null;
      guard.challenge = null;
      this.solveChallenge();
    }
  };

  Widget.prototype.solveChallenge = function () {
    var guard = this.guard;
    guard.challenge = this.request("GET", "/altcha/challenge").then(function (answer) {
      if (answer.status !== 200 || !answer.body) return null;
      return solveAltcha(answer.body).then(function (solution) { guard.solution = solution; });
    }, function () { return null; });
  };

  function sha256Hex(text) {
    return window.crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)).then(function (digest) {
      return Array.prototype.map.call(new Uint8Array(digest), function (b) {
        return (b + 0x100).toString(16).slice(1);
      }).join("");
    });
  }

  /* ALTCHA (v1, SHA-256): the number n <= maxNumber with sha256(salt + n) ===
     challenge, tried 500 at a time; the payload is base64 JSON. */
  function solveAltcha(challenge) {
    if (!(window.crypto && window.crypto.subtle)) return Promise.resolve(null);
    var max = challenge.maxNumber || challenge.maxnumber || 1000000;
    function batch(start) {
      if (start > max) return Promise.resolve(null);
      var tries = [];
      for (var n = start; n < start + 500 && n <= max; n += 1) tries.push(sha256Hex(challenge.salt + n));
      return Promise.all(tries).then(function (hashes) {
        var found = hashes.indexOf(challenge.challenge);
        return found >= 0 ? start + found : batch(start + 500);
      });
    }
    return batch(0).then(function (number) {
      if (number === null) return null;
      return btoa(JSON.stringify({
        algorithm: challenge.algorithm, challenge: challenge.challenge, number: number,
        salt: challenge.salt, signature: challenge.signature
      }));
    });
  }

  /* A refusal of the bot protection, said by the button; true when it was one. */
  Widget.prototype.guardAnswer = function (answer) {
    var detail = answer.body && typeof answer.body.detail === "string" ? answer.body.detail : null;
    if (answer.status === 429) {
      this.tooMany(parseInt(answer.retryAfter, 10) || 1);
    } else if ((answer.status === 403 || answer.status === 422) && detail !== null) {
      this.setBusy(false);
      this.acting = false;
      this.say("", null);
      this.waitNote.textContent = detail;
      this.waitNote.hidden = false;
      this.submit.focus();
    } else {
      return false;
    }
    return true;
  };

  /* 429: the button stays off for Retry-After seconds, counting down by it. */
  Widget.prototype.tooMany = function (seconds) {
    var self = this;
    this.setBusy(false);
    this.acting = false;
    this.say("", null);
    this.waitUntil = Date.now() + seconds * 1000;
    if (this.stopWaiting) this.stopWaiting();
    this.stopWaiting = kit.countdown(seconds, function (left) {
      self.submit.disabled = left > 0;
      self.waitNote.textContent = left > 0 ? kit.tooManyMessage(left) : kit.TRY_AGAIN_NOW;
      self.waitNote.hidden = false;
    });
  };

  /* The stylesheet ``name`` from the widget's origin, once per page. */
  function addStylesheet(name) {
    var href = scriptOrigin + "/" + name;
    var links = document.querySelectorAll('link[rel="stylesheet"]');
    for (var i = 0; i < links.length; i += 1) {
      if (links[i].href === href) return;
    }
    var link = document.createElement("link");
    link.rel = "stylesheet";
    link.href = href;
    document.head.appendChild(link);
  }

  /* Call ``then`` once the kit (kit.js, from the widget's origin) has run:
     at once if the page has it, else after loading it, once per page. */
  function withKit(then) {
    if (window.SchedulerKit) {
      then();
      return;
    }
    var src = scriptOrigin + "/kit.js";
    var tag = null;
    var scripts = document.querySelectorAll("script[src]");
    for (var i = 0; i < scripts.length; i += 1) {
      if (scripts[i].src === src) tag = scripts[i];
    }
    if (!tag) {
      tag = document.createElement("script");
      tag.src = src;
      document.head.appendChild(tag);
    }
    tag.addEventListener("load", function () {
      if (window.SchedulerKit) then();
    });
  }

  function useKit() {
    kit = window.SchedulerKit;
    el = kit.el;
    clear = kit.clear;
    range = kit.range;
    visitorZone = kit.visitorZone;
    formats = kit.formats(undefined); // in the visitor's own time zone (the browser's)
    dayLabel = formats.dayLabel;
    dateLabel = formats.dateLabel;
    timeLabel = formats.timeLabel;
  }

  function start() {
    var roots = document.querySelectorAll("[data-scheduler-api]");
    if (!roots.length) return;
    addStylesheet("kit.css");
    addStylesheet("widget.css");
    withKit(function () {
      useKit();
      for (var i = 0; i < roots.length; i += 1) {
        if (!roots[i].hasAttribute("data-scheduler-ready")) {
          roots[i].setAttribute("data-scheduler-ready", "");
          new Widget(roots[i]);
        }
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
