"""The organizer console in real headless Chromium against the real platform (broker + 4 processes).

An organizer logs in, watches a proposal arrive live after a POST (pushed from `salon.matches`
over Server-Sent Events), shortlists it, creates a session with 2 featured projects, runs the
planner and publishes; a participant's key cannot open the console. Screenshots are saved
under test-artifacts/.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from services.launcher import Platform
from shared.models import Mandate, Match, Pitch, Role
from shared.sessions.models import Invitation, SalonSession
from tests.payloads import MANDATE, PITCH
from tests.sessions_seed import seed_participants

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run"]  # fmt: skip

pytestmark = pytest.mark.e2e


XSS_TITLE = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">石墨'


def seed_hostile_title(engine: Engine, mandate_id: str) -> None:
    """A pitch whose title is markup, proposed to a mandate, so the queue must render it."""
    with Session(engine) as session:
        pitch = Pitch(
            owner="attacker",
            company="x",
            title=XSS_TITLE,
            summary="依托鹤岗晶质石墨资源建设负极材料。",
            stage="series_a",
            funding_ask=8e7,
            region="黑龙江省鹤岗市",
            sectors=["新材料"],
            sector_codes=["new_materials"],
            status="matched",
        )
        session.add(pitch)
        mandate = session.get(Mandate, mandate_id)
        assert mandate is not None
        session.add(
            Match(
                pair_kind="pitch-mandate",
                a_kind="pitch",
                a_id=pitch.id,
                a_owner="attacker",
                b_kind="mandate",
                b_id=mandate_id,
                b_owner=mandate.owner,
                score=0.99,
            )
        )
        session.commit()


def log_in(page: Page, url: str, key: str) -> None:
    page.goto(f"{url}/console/")
    page.fill("#key", key)
    page.click("#login-button")


@pytest.mark.parametrize("platform", ["sqlite"], indirect=True)
def test_an_organizer_runs_a_session_from_the_browser(platform: Platform, headers_for):
    if not Path(CHROMIUM).exists():
        pytest.fail("chromium is missing: `make test` installs it (apt-get install chromium)")
    ARTIFACTS.mkdir(exist_ok=True)
    ids = seed_participants(platform.engine, funds=8, governments=4, pitches=2)
    seed_hostile_title(platform.engine, ids["mandate"][0])
    organizer_key = headers_for(Role.ORGANIZER, "组织方")["Authorization"].removeprefix("Bearer ")
    fund_key = headers_for(Role.FUND, "黑龙江省新材料产业引导基金")
    enterprise = headers_for(Role.ENTERPRISE, "鹤岗碳材科技")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1366, "height": 900}, locale="en-US")
            log_in(page, platform.api_url, organizer_key)
            expect(page.locator("#app")).to_be_visible()
            # Stored XSS: a title with markup is shown as text, and none of it runs.
            xss_row = page.locator("#queue-body tr", has_text=XSS_TITLE).first
            expect(xss_row).to_be_visible(timeout=30_000)
            assert page.evaluate("window.__xss") is None
            assert page.locator("#queue-body img").count() == 0
            expect(page.locator("#live")).to_have_class("pill on", timeout=60_000)

            # A proposal appears live: nobody reloads the page.
            with httpx.Client(base_url=platform.api_url, timeout=30) as http:
                assert http.post("/v1/mandates", json=MANDATE, headers=fund_key).status_code == 202
                assert http.post("/v1/pitches", json=PITCH, headers=enterprise).status_code == 202
            live_row = page.locator("#queue-body tr", has_text=PITCH["title"]).first
            expect(live_row).to_be_visible(timeout=120_000)
            expect(live_row).to_contain_text(MANDATE["fund_name"])
            page.screenshot(path=str(ARTIFACTS / "console-queue-live.png"), full_page=True)

            live_row.locator(".row-shortlist").click()
            match_id = live_row.get_attribute("data-match")
            expect(page.locator(f'#queue-body tr[data-match="{match_id}"] .status')).to_have_text("shortlisted")
            with Session(platform.engine) as session:
                assert session.get(Match, match_id).status == "shortlisted"

            # A closed session with 2 featured projects: plan (CP-SAT) and publish.
            page.click('#tabs button[data-tab="sessions"]')
            page.fill("#s-theme", "石墨新材料闭门会")
            page.fill("#s-start", "2030-05-20T14:00")
            page.fill("#s-venue", "鹤岗市新质生产力会客厅")
            page.fill("#s-capacity", "10")
            page.select_option("#s-featured", ids["pitch"][:2])
            page.click("#create-session")
            card = page.locator(".session", has_text="石墨新材料闭门会")
            expect(card).to_be_visible()
            card.locator("button.plan").click()
            expect(card.locator(".plan-info")).to_contain_text("gap 0.0%", timeout=30_000)
            expect(card.locator("ul.invited li")).to_have_count(10)
            card.locator("button.publish").click()
            expect(card.locator(".session-head .status")).to_have_text("published")
            page.screenshot(path=str(ARTIFACTS / "console-session-published.png"), full_page=True)
            with Session(platform.engine) as session:
                salon = session.exec(select(SalonSession)).one()
                assert salon.status == "published"
                invited = session.exec(select(Invitation).where(Invitation.status == "invited")).all()
                assert len(invited) == 10 and all(i.invited_at for i in invited)
                featured_owners = {p.owner for p in session.exec(select(Pitch)).all() if p.id in ids["pitch"][:2]}
                assert featured_owners <= {i.participant for i in invited}

            # Overview at tablet width, in Chinese.
            page.set_viewport_size({"width": 820, "height": 1180})
            page.click("#lang")
            page.click('#tabs button[data-tab="overview"]')
            expect(page.locator("#chart-funnel svg")).to_be_visible()
            expect(page.locator("#tabs button[data-tab='overview']")).to_have_text("概览")
            page.screenshot(path=str(ARTIFACTS / "console-overview-tablet-zh.png"), full_page=True)

            # A participant's key cannot open the console.
            other = browser.new_page(locale="en-US")
            log_in(other, platform.api_url, fund_key["Authorization"].removeprefix("Bearer "))
            expect(other.locator("#login-error")).to_contain_text("organizers only")
            expect(other.locator("#app")).to_be_hidden()
            other.screenshot(path=str(ARTIFACTS / "console-participant-refused.png"))
        finally:
            browser.close()
