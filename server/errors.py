"""Refusals: every way Podium says no to a request, each a class with its HTTP status and its
stable code (docs/architecture.md#refusals).

A refusal is raised where its rule is checked — the countdown's transition, the board's
visibility, the upload's limits — and rendered by one middleware (`server/app.py`): JSON
`{"error": {"code", "message", ...}}` for the API, the error page for a browser. Its message is
written for the person who reads it and says what to do next. A new refusal is a class here
and a row in docs/api.md's "Refusals" table (`tests/test_errors.py` checks both directions).

No dependencies, so the pure cores (the countdown's arithmetic) raise these too.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo


class PodiumError(Exception):
    """A refusal the user should see: `code` is stable for scripts, `message` says what to do.

    The classes directly below this one name an HTTP status (`Forbidden`, `Conflict`…); the
    refusals are their subclasses, each with its own `code`."""

    status = 400
    code: str

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        if not hasattr(self, "code"):
            raise TypeError(f"{type(self).__name__} is a status, not a refusal: raise one "
                            "of its subclasses")
        self.extra = extra

    def to_json(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


# -- statuses ----------------------------------------------------------------------------------

class BadRequest(PodiumError):
    status = 400


class Unauthorized(PodiumError):
    status = 401


class Forbidden(PodiumError):
    status = 403


class NotFound(PodiumError):
    status = 404


class RequestTimeout(PodiumError):
    status = 408


class Conflict(PodiumError):
    status = 409


class TooLarge(PodiumError):
    status = 413


class Unprocessable(PodiumError):
    status = 422


class TooManyRequests(PodiumError):
    status = 429


class InsufficientStorage(PodiumError):
    status = 507


# -- 400: the request itself is wrong ----------------------------------------------------------

class BadJson(BadRequest):
    code = "bad_json"

    def __init__(self, message: str = "the body must be a JSON object, e.g. "
                                      "{\"seconds\": 300}") -> None:
        super().__init__(message)


class MisplacedOption(BadRequest):
    """An organizer action given an option that belongs to another action."""

    code = "bad_request"


class BadSeconds(BadRequest):
    """The extra time asked of `extend` is not a number of seconds in (0, a day]."""

    code = "bad_seconds"


class BadUpload(BadRequest):
    """The upload is not a multipart form with a field `file`, or passes the form's limits."""

    code = "bad_upload"


class BadWait(BadRequest):
    code = "bad_wait"

    def __init__(self) -> None:
        super().__init__("wait must be a number of seconds, e.g. ?wait=30")


class BadStep(BadRequest):
    code = "bad_step"

    def __init__(self) -> None:
        super().__init__("step is the number of places revealed so far, e.g. ?step=2")


class ReasonRequired(BadRequest):
    """A decision on an exam without the reason the center will read."""

    code = "reason_required"

    def __init__(self, what: str) -> None:
        super().__init__(f"give the reason for {what}, as {{\"reason\": \"...\"}}: the "
                         "center reads it")


class BadDecision(BadRequest):
    code = "bad_decision"

    def __init__(self, given: object) -> None:
        super().__init__(f"state must be \"accepted\" or \"rejected\", got {given!r}")


class BadLogin(BadRequest):
    code = "bad_login"


class NoSession(BadRequest):
    code = "no_session"

    def __init__(self) -> None:
        super().__init__("the operator's name belongs to a browser's session; a script sends "
                         "\"by\" with each action")


class BadName(BadRequest):
    code = "bad_name"

    def __init__(self) -> None:
        super().__init__("give your name, e.g. {\"name\": \"Alice\"}")


class BadUploadLength(BadRequest):
    """A center's web upload declared without a usable `Upload-Length`."""

    code = "bad_upload_length"

    def __init__(self, given: str | None) -> None:
        said = f"got {given!r}" if given else "none was sent"
        super().__init__(f"declare the zip's size in bytes in the Upload-Length header "
                         f"(a whole number above 0; {said})")


class BadChunk(BadRequest):
    """A chunk of a center's upload the server cannot append: the message says why."""

    code = "bad_chunk"


class UploadInterrupted(BadRequest):
    """The client went away mid-upload: nobody will read the answer, one log line says so."""

    code = "upload_interrupted"


class BadArchive(Unprocessable):
    """A center's zip that cannot become an exam: not a zip, unsafe, too big unpacked, or
    without DICOM files. The message names the file and the limit."""

    code = "bad_archive"


class ReleaseError(Unprocessable):
    """A release that cannot be prepared or opened as given; the message says what to fix."""

    code = "release_unusable"


class WrongKeyError(ReleaseError):
    """The key given to unseal a release does not open it."""

    status = 400
    code = "wrong_key"


class BadGrade(BadRequest):
    """A review's grade is not one of A, B, C, D."""

    code = "bad_grade"


class BadSlice(BadRequest):
    """The review viewer asked for a slice or window the exam does not have (the message is
    render.py's: which axis, which index, the range)."""

    code = "bad_slice"


# -- 401: who is asking is not known -----------------------------------------------------------

class TokenRequired(Unauthorized):
    code = "unauthorized"

    def __init__(self, message: str = "this needs an access token: send 'Authorization: "
                                      "Bearer TOKEN' or log in with your link") -> None:
        super().__init__(message)


class InvalidToken(Unauthorized):
    code = "invalid_token"

    def __init__(self, message: str = "this access token is not recognised; check it with "
                                      "the organizers (podium tokens)") -> None:
        super().__init__(message)


class SessionExpired(Unauthorized):
    code = "session_expired"

    def __init__(self) -> None:
        super().__init__("your session has ended (logged out, expired or replaced); open your "
                         "login link again")


# The board's two refusals are PermissionErrors too: server/hub.py still answers the builtin
# with a websocket "forbidden"; once it catches these, that base can go.

class BoardNeedsToken(TokenRequired):
    """An anonymous viewer asked for a board shown to the teams or the jury only."""

    def __init__(self, slug: str, audience: str) -> None:
        super().__init__(f"the board of {slug!r} is shown to {audience}: log in with your "
                         "access token or link")


# -- 403: known, and not allowed ---------------------------------------------------------------

class WrongRole(Forbidden):
    code = "forbidden"

    def __init__(self, needed: Iterable[str], role: str) -> None:
        super().__init__(f"this needs the {' or '.join(sorted(needed))} role; your token is "
                         f"{role}")


class CrossOrigin(Forbidden):
    code = "cross_origin"

    def __init__(self) -> None:
        super().__init__("this request came from another site; Podium accepts changes only "
                         "from its own pages (or from scripts with an Authorization header)")


class BadOrigin(Forbidden):
    code = "bad_origin"

    def __init__(self) -> None:
        super().__init__("websocket connections are accepted from this server's own pages "
                         "only")


class NotStarted(Forbidden):
    """The challenge's clock has not been started: no uploads, no validation set yet."""

    code = "not_started"


class DeadlinePassed(Forbidden):
    code = "deadline_passed"

    def __init__(self, deadline: str, server_time: str, *, deadline_iso: str | None,
                 server_time_iso: str | None) -> None:
        super().__init__(f"the deadline ({deadline}) has passed (server time {server_time}); "
                         "uploads for this challenge are closed",
                         deadline=deadline_iso, server_time=server_time_iso)


class NotRegistered(Forbidden):
    """A team acts on a challenge it is not registered for."""

    code = "not_registered"

    def __init__(self, slug: str) -> None:
        super().__init__(f"your team is not registered for {slug!r}; ask the organizers if "
                         "it should be")


class TeamNotRegistered(NotRegistered):
    """An organizer's action names a team not registered for the challenge: the same code as
    the team's own refusal, a conflict with the event's registrations rather than a 403."""

    status = 409

    def __init__(self, team: str, slug: str) -> None:
        PodiumError.__init__(self, f"team {team!r} is not registered for {slug!r}; the event "
                                   "file lists each team's challenges")


class BoardHidden(Forbidden):
    code = "board_hidden"

    def __init__(self, slug: str, audience: str) -> None:
        super().__init__(f"the board of {slug!r} is shown to: {audience}")


class ReleaseBlocked(Forbidden):
    code = "release_blocked"

    def __init__(self) -> None:
        super().__init__("this validation set is held back: the organizers must clear it "
                         "(podium check-release)")


class NotYourQuestion(Forbidden):
    """A reviewer opens or grades an exam of a question it does not grade."""

    code = "not_your_question"

    def __init__(self, slug: str) -> None:
        super().__init__(f"you do not grade the exams of {slug!r}; the event file lists each "
                         "reviewer's questions")


class NotCenterQuestion(Forbidden):
    """A center uploads for a question it does not include for."""

    code = "not_center_question"

    def __init__(self, slug: str, yours: Iterable[str]) -> None:
        listed = ", ".join(yours) or "none"
        super().__init__(f"your center does not send exams for {slug!r}; its questions: "
                         f"{listed} (the event file lists each center's questions)")


# -- 404: no such thing ------------------------------------------------------------------------

class UnknownChallenge(NotFound):
    """A LookupError too: the hub (server/hub.py) answers one met while subscribing as the
    websocket's `unknown_channel`."""

    code = "unknown_challenge"

    def __init__(self, slug: str, known: Iterable[str]) -> None:
        super().__init__(f"no challenge {slug!r}; challenges: {', '.join(known)}")


class UnknownExam(NotFound):
    """Also what a center asking for another center's exam gets: it learns nothing, not even
    that the exam exists."""

    code = "unknown_exam"

    def __init__(self, exam_id: object, where: str = "") -> None:
        super().__init__(f"no exam {exam_id}{where}")


class UnknownViolation(NotFound):
    code = "unknown_violation"

    def __init__(self, violation_id: int) -> None:
        super().__init__(f"no violation {violation_id}; the inclusion dashboard lists the "
                         "open ones")


class UnknownUpload(NotFound):
    """Also what a center asking for another center's upload gets."""

    code = "unknown_upload"

    def __init__(self, upload_id: object) -> None:
        super().__init__(f"no upload {upload_id} among yours; start one with POST "
                         "/api/v1/challenges/{slug}/uploads")


class UnknownCenter(NotFound):
    code = "unknown_center"

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"no center {name!r} in this event; centers: {', '.join(known)}")


class UnknownTeam(NotFound):
    code = "unknown_team"

    def __init__(self, team: str) -> None:
        super().__init__(f"no team {team!r} in this event; GET /api/v1/teams lists them")


class UnknownSubmission(NotFound):
    """Also what a team asking for another team's submission gets: it learns nothing, not
    even that the submission exists."""

    code = "unknown_submission"


class NoRelease(NotFound):
    code = "no_release"

    def __init__(self, slug: str) -> None:
        super().__init__(f"no validation set is published for {slug!r}")


# -- 408, 409, 413, 429, 507 -------------------------------------------------------------------

class UploadTimeout(RequestTimeout):
    code = "upload_timeout"

    def __init__(self, idle_s: float) -> None:
        super().__init__(f"no data received for {idle_s:g} s; the upload was dropped, send it "
                         "again")


class InvalidTransition(Conflict):
    """An organizer action the challenge's state does not allow (`ALLOWED` in
    server/countdown/schedule.py lists what each state allows)."""

    code = "invalid_transition"

    def __init__(self, action: str, state: str, allowed: Iterable[str]) -> None:
        allowed_now = ", ".join(allowed) or "nothing: the challenge is over"
        super().__init__(f"cannot {action} a {state} challenge (allowed now: {allowed_now})",
                         state=state)
        self.action = action
        self.state = state


class AlreadyGraded(Conflict):
    """The reviewer already read this exam, or its readings are all in."""

    code = "already_graded"


class NotInReview(Conflict):
    code = "not_in_review"

    def __init__(self, stage: str) -> None:
        super().__init__(f"this exam is {stage}, not with the experts: it is not graded now",
                         stage=stage)


class DecisionRefused(Conflict):
    """An organizer's decision on a violation that its state no longer allows (decided
    already, a warning, an exam that moved on); the message says which."""

    code = "decision_refused"

    def __init__(self, violation_id: int, why: str) -> None:
        super().__init__(f"violation {violation_id} cannot be decided: {why}")


class CannotWithdraw(Conflict):
    code = "cannot_withdraw"

    def __init__(self, exam_id: int, exclusion: str) -> None:
        super().__init__(f"exam {exam_id} is already excluded ({exclusion}); there is nothing "
                         "to withdraw")


class OffsetMismatch(Conflict):
    """A chunk sent at another offset than the server holds: resume from `offset`."""

    code = "offset_mismatch"

    def __init__(self, sent: int, offset: int) -> None:
        super().__init__(f"the chunk starts at byte {sent} but the server holds {offset} bytes "
                         f"of this upload: send from byte {offset}", offset=offset)


class UploadClosed(Conflict):
    """A chunk for an upload that has every byte already (or was refused)."""

    code = "upload_closed"

    def __init__(self, upload_id: int, state: str) -> None:
        super().__init__(f"upload {upload_id} takes no more bytes: it is {state} "
                         f"(GET /api/v1/uploads/{upload_id} says what became of it)",
                         state=state)


class SubmissionLimit(Conflict):
    code = "submission_limit"

    def __init__(self, slug: str, limit: int) -> None:
        super().__init__(f"your team has used all {limit} submissions for {slug!r}; the ones "
                         "already sent are scored and ranked as usual",
                         max_submissions=limit)


class FileTooLarge(TooLarge):
    code = "too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the file is larger than this challenge's limit of "
                         f"{limit_bytes / 1024 / 1024:g} MiB", limit_bytes=limit_bytes)


class UploadTooLarge(TooLarge):
    code = "upload_too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"the zip is larger than the {limit_bytes / 1024 / 1024:g} MiB an "
                         "exam may take; send the study's series without others, or ask the "
                         "organizers to raise inclusion_upload_mb", limit_bytes=limit_bytes)


class TooManyPending(TooManyRequests):
    code = "too_many_pending"

    def __init__(self, pending: int) -> None:
        super().__init__(f"{pending} of your submissions are still being scored; wait for "
                         "their results before sending more")


class RateLimited(TooManyRequests):
    code = "rate_limited"

    def __init__(self, wait_s: float) -> None:
        super().__init__(f"too many uploads at once; try again in {wait_s:.0f} s",
                         retry_after_s=round(wait_s, 1))


class StorageFull(InsufficientStorage):
    """The team's quota or the data dir's free-space reserve would be exceeded."""

    code = "storage_full"


# -- registration (server/registration.py) ------------------------------------------------------

class RegistrationClosed(Forbidden):
    code = "registration_closed"


class RegistrationInvalid(Unprocessable):
    """A registration form that breaks a rule: `field` names the member or field."""

    code = "registration_invalid"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message, field=field)


class CharterOutdated(Conflict):
    code = "charter_outdated"

    def __init__(self, accepted: str, current: str) -> None:
        super().__init__(f"the charter accepted is version {accepted!r}, the current one is "
                         f"{current!r}; reload the page, read it and accept it again",
                         field="charter_version", current=current)


class AlreadyInTeam(Conflict):
    code = "already_in_team"

    def __init__(self, field: str, email: str, slug: str) -> None:
        super().__init__(f"{email} is already in a team for {slug!r}; one person takes part "
                         "in one team per question", field=field)


class TeamNameTaken(Conflict):
    code = "team_name_taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"a team is already called {name!r}; choose another name",
                         field="team")


class UnknownRegistration(NotFound):
    code = "unknown_registration"

    def __init__(self, ident: str) -> None:
        super().__init__(f"no registration {ident}; the console lists them")


class RegistrationDecided(Conflict):
    code = "registration_decided"

    def __init__(self, ident: int, state: str, wanted: str) -> None:
        what = ("only a waiting registration is approved or rejected" if wanted == "waiting"
                else "only an approved registration's team has a token")
        super().__init__(f"registration {ident} is already {state}; {what}", state=state)


class RegistrationTooLarge(TooLarge):
    code = "form_too_large"

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(f"a registration form is at most {limit_bytes // 1024} KiB; shorten "
                         "the names and affiliations", limit_bytes=limit_bytes)


class RegistrationsFull(TooManyRequests):
    code = "registrations_full"

    def __init__(self, waiting: int) -> None:
        super().__init__(f"{waiting} registrations already wait for the organizers; try again "
                         "once they have answered, or write to them")


# -- datasets (docs/datasets.md) ---------------------------------------------------------------

class SplitRefused(Unprocessable):
    """The split asked cannot be made from the kept exams: more exams than there are, or
    patients kept whole that no set has room for. The message says which and what to change."""

    code = "split_refused"


class NoSplitDeclared(Conflict):
    code = "no_split_declared"

    def __init__(self, slug: str) -> None:
        super().__init__(f"{slug} declares no split: add a [challenges.splits] table with its "
                         "seed and sets to the event file (docs/datasets.md)")


class NoSplit(NotFound):
    code = "no_split"

    def __init__(self, slug: str) -> None:
        super().__init__(f"{slug} has no split yet: an organizer makes it with POST "
                         f"/api/v1/challenges/{slug}/split or `podium split`")


class NoTruth(Conflict):
    """A challenge whose truth is written from a set cannot start before that truth exists."""

    code = "no_truth"

    def __init__(self, slug: str, name: str) -> None:
        super().__init__(f"{slug} cannot start: its truth comes from its {name} set, which "
                         "is not built yet; make the split first with `podium split` or the "
                         f"datasets view (POST /api/v1/challenges/{slug}/split), then start",
                         set=name)


class SplitExists(Conflict):
    code = "split_exists"

    def __init__(self, slug: str) -> None:
        super().__init__(f"{slug} is split already; to split again, send {{\"redo\": true}} "
                         "(or `podium split --redo`) before any of its sets is released")


class SplitReleased(Conflict):
    code = "split_released"

    def __init__(self, slug: str, released: str) -> None:
        super().__init__(f"{slug}'s split cannot change: its set {released!r} is released "
                         "to the teams already", released=released)


class BatchNotOpen(NotStarted):
    """A batch asked for before its opening moment: the final day's `not_started`."""

    def __init__(self, slug: str, name: str, opens: datetime | None, timezone: str) -> None:
        if opens is None:
            when = "when an organizer opens it"
        else:
            local = opens.astimezone(ZoneInfo(timezone))
            when = f"at {local:%Y-%m-%d %H:%M:%S} ({timezone})"
        super().__init__(f"batch {name!r} of {slug!r} is not open yet: it opens {when}; "
                         "download it then",
                         opens=None if opens is None else opens.isoformat())


class UnknownBatch(NotFound):
    code = "unknown_batch"

    def __init__(self, slug: str, name: str, known: Iterable[str]) -> None:
        listed = ", ".join(known) or "none"
        super().__init__(f"{slug!r} has no batch {name!r}; its batches: {listed}")


class EventFileError(Exception):
    """The event file is refused. The message names the file, the key and the line when known.
    Not a request's refusal: the server does not start (`podium serve`, `podium check`)."""

    def __init__(self, path: str, message: str, *, key: str | None = None, line: int | None = None):
        self.path = path
        self.key = key
        self.line = line
        self.detail = message
        where = path + (f":{line}" if line else "")
        what = f" [{key}]" if key else ""
        super().__init__(f"{where}:{what} {message}")
