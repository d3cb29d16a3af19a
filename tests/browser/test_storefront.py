"""A customer opens the rewards page in the shop, redeems a reward, sees the code and the new balance.

The real app is served by a real WSGI server thread behind a stand-in for Shopify's app proxy
(tests/storefront_support.py): it signs each forwarded query as Shopify does and wraps the
``application/liquid`` answer in a theme page. Screenshots go to docs/screenshots/ for docs/storefront.md.
"""

from __future__ import annotations

import re

from browser_support import screenshot
from payloads import order
from storefront_support import PREFIX, FakeShopifyProxy, serving
from sqlalchemy import select

from retention_plugin.storage import tables as t
from retention_plugin.testing import deliver_shopify, run_worker
from retention_plugin.web import create_app

LOYALTY = {"rewards": [{"name": "ten-off", "points": 100, "amount": "10.00", "automatic": False,
                        "title": "10 USD off your next order", "titles": {"lt": "10 USD nuolaida kitam užsakymui"}},
                       {"name": "big", "points": 500, "percent": "20", "automatic": False}],
           "tiers": [{"name": "silver", "title": "Silver", "min_points": 100, "perks": {"free_shipping": True}},
                     {"name": "gold", "title": "Gold", "min_points": 1000}],
           "pending_days": 14}


def test_a_customer_redeems_on_the_rewards_page_in_two_languages(make_app, clock, page):
    app = make_app(loyalty=LOYALTY)
    deliver_shopify(app, "orders/paid", order(1, customer_id=1001, subtotal="250.00",
                                              created=clock.now.replace(year=clock.now.year - 1)))
    deliver_shopify(app, "orders/paid", order(2, customer_id=1001, subtotal="40.00", created=clock.now))
    deliver_shopify(app, "orders/paid", order(3, customer_id=1002, email="rasa@example.com", first_name="Rasa",
                                              subtotal="180.00", locale="lt",
                                              created=clock.now.replace(year=clock.now.year - 1)))
    run_worker(app)
    proxy = FakeShopifyProxy(create_app(app), "/proxy/rewards", clock)
    with serving(proxy) as base:
        proxy.customer = 1001
        page.goto(base + PREFIX)
        assert page.locator("h1").inner_text() == "Your rewards"
        assert page.locator("#rp-available").inner_text() == "250"
        assert page.locator("#rp-pending").inner_text() == "40"
        assert "Silver" in page.locator("#rp-tier").inner_text()
        screenshot(page, "storefront-rewards")

        offer = page.locator("form.rp-offer", has_text="10 USD off your next order")
        offer.get_by_role("button", name="Redeem").dblclick()  # an impatient double click redeems once
        page.wait_for_selector("#rp-code")
        code = page.locator("#rp-code").inner_text()
        assert re.fullmatch(r"LOYAL-[A-Z0-9]+", code)
        assert page.locator("#rp-balance-now").inner_text() == "You now have 150 points available."
        assert page.locator("#rp-available").inner_text() == "150"
        assert code in page.locator("#rp-codes").inner_text()
        assert "Reward" in page.locator("#rp-history").inner_text()
        screenshot(page, "storefront-redeemed")

        with app.engine.connect() as conn:
            spent = conn.execute(select(t.ledger.c.points).where(t.ledger.c.kind == "spend")).scalars().all()
        assert spent == [-100]

        proxy.customer = 1002  # a Lithuanian customer
        page.goto(base + PREFIX)
        assert page.locator("h1").inner_text() == "Jūsų apdovanojimai"
        assert page.locator("#rp-available").inner_text() == "180"
        assert "10 USD nuolaida kitam užsakymui" in page.locator("#rp-offers").inner_text()
        assert code not in page.content()  # nothing of the other customer
        screenshot(page, "storefront-rewards-lt")

        proxy.customer = None
        page.goto(base + PREFIX)
        assert "Sign in to see your rewards." in page.locator("#rp-sign-in").inner_text()


def test_the_rewards_page_on_a_phone(make_app, clock, phone_page):
    app = make_app(loyalty=LOYALTY)
    deliver_shopify(app, "orders/paid", order(1, customer_id=1001, subtotal="250.00",
                                              created=clock.now.replace(year=clock.now.year - 1)))
    run_worker(app)
    proxy = FakeShopifyProxy(create_app(app), "/proxy/rewards", clock)
    proxy.customer = 1001
    with serving(proxy) as base:
        phone_page.goto(base + PREFIX + "?locale=ka")
        assert phone_page.locator("h1").inner_text() == "თქვენი ჯილდოები"
        width = phone_page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"the page scrolls sideways on a phone ({width}px)"
        screenshot(phone_page, "storefront-phone-ka")
