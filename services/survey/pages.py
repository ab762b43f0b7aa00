"""The survey page a requester answers on: ``GET /s/{token}`` and ``POST /s/{token}``.

Plain HTML with no scripts and no external assets: a form whose scale buttons submit the score
together with the comment, so it works in any browser and with a screen reader.
"""

from __future__ import annotations

from html import escape
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse

from services.survey import scoring, service
from services.survey.api import Context
from services.survey.schemas import MAX_COMMENT_LENGTH
from shared.app import Runtime, Session
from shared.errors import DomainError, Unprocessable

router = APIRouter(include_in_schema=True, tags=["survey pages"])
Token = Annotated[str, Path(max_length=200)]

SCALE_LABELS = {
    "csat": ("Very unsatisfied", "Very satisfied"),
    "nps": ("Not at all likely", "Extremely likely"),
    "ces": ("Very difficult", "Very easy"),
}

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto;padding:0 1rem;color:#1a1a1a}
fieldset{border:0;padding:0;margin:0 0 1.5rem}legend{font-size:1.25rem;font-weight:600;margin-bottom:1rem}
.scale{display:flex;flex-wrap:wrap;gap:.5rem}
.scale button{min-width:2.75rem;min-height:2.75rem;font-size:1.1rem;border:2px solid #1f4f99;
background:#fff;color:#1f4f99;border-radius:.4rem;cursor:pointer}
.scale button:hover,.scale button:focus{background:#1f4f99;color:#fff;outline:3px solid #f5a623}
.ends{display:flex;justify-content:space-between;font-size:.9rem;color:#444;margin-top:.4rem}
textarea{width:100%;min-height:6rem;font:inherit;box-sizing:border-box}
label{display:block;font-weight:600;margin-bottom:.4rem}
"""


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    html = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body><main>{body}</main></body></html>"
    )
    return HTMLResponse(html, status_code=status_code)


def _message(title: str, text: str, status_code: int) -> HTMLResponse:
    return _page(title, f'<h1>{escape(title)}</h1><p role="status">{escape(text)}</p>', status_code)


def _error(exc: DomainError) -> HTMLResponse:
    titles = {404: "Survey not found", 409: "Already answered", 410: "Survey expired"}
    return _message(
        titles.get(exc.status_code, "Please check your answer"), exc.message, exc.status_code
    )


def _form(token: str, kind: str, question: str, error: str | None = None) -> str:
    low, high = scoring.SCALES[kind]
    low_label, high_label = SCALE_LABELS[kind]
    buttons = "".join(
        f'<button type="submit" name="score" value="{n}" aria-label="{n} of {high}">{n}</button>'
        for n in range(low, high + 1)
    )
    alert = f'<p role="alert">{escape(error)}</p>' if error else ""
    return (
        f"<h1>{escape(question)}</h1>{alert}"
        f'<form method="post" action="/s/{escape(token)}">'
        f'<label for="comment">Anything you would like to tell us? (optional)</label>'
        f'<textarea id="comment" name="comment" maxlength="{MAX_COMMENT_LENGTH}"></textarea>'
        f'<fieldset><legend id="scale-legend">Choose a score from {low} to {high}</legend>'
        f'<div class="scale" role="group" aria-labelledby="scale-legend">{buttons}</div>'
        f'<div class="ends" aria-hidden="true"><span>{low} = {low_label}</span>'
        f"<span>{high} = {high_label}</span></div></fieldset></form>"
    )


@router.get("/s/{token}", response_class=HTMLResponse)
async def survey_page(token: Token, session: Session, runtime: Runtime) -> HTMLResponse:
    try:
        survey = await service.answerable(session, token, runtime.clock.now())
    except DomainError as exc:
        return _error(exc)
    return _page(survey.question, _form(token, survey.kind, survey.question))


@router.post("/s/{token}", response_class=HTMLResponse)
async def submit_page(token: Token, request: Request, ctx: Context) -> HTMLResponse:
    form = await request.form()
    raw_score, raw_comment = form.get("score"), form.get("comment")
    comment = raw_comment.strip() if isinstance(raw_comment, str) else None
    try:
        survey = await service.answerable(ctx.session, token, ctx.clock.now())
        if not isinstance(raw_score, str) or not raw_score.strip().lstrip("-").isdigit():
            raise Unprocessable("score: choose one of the buttons")
        if comment and len(comment) > MAX_COMMENT_LENGTH:
            raise Unprocessable(f"comment: at most {MAX_COMMENT_LENGTH} characters")
        await service.answer(ctx, token, int(raw_score), comment)
    except Unprocessable as exc:
        if "survey" in locals():
            body = _form(token, survey.kind, survey.question, exc.message)
            return _page(survey.question, body, 422)
        return _error(exc)
    except DomainError as exc:
        return _error(exc)
    return _message("Thank you!", "Your answer has been recorded.", 200)
