//! The seat map with the waiting queue, clicked through in the browser: with it on, the page
//! shows the user's place and holds and pays only in their turn; with it off, the page never
//! mentions or asks for a place in line.

use crate::browser::Browser;
use crate::helpers::spawn_app;
use crate::queue_helpers::{join, spawn_queued_app, token_of};
use std::time::Duration;

const SEAT_3: &str = ".seat[data-seat-no=\"3\"]";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_waits_in_line_on_the_seat_map_then_holds_and_pays_in_their_turn() {
    let (app, _queue) = spawn_queued_app(1, &[]).await;
    app.create_schedule(20, 1000).await;
    // Someone else has the only turn, and never pays.
    let first = app.create_user(0).await;
    let first_place = join(&app, &first).await;
    assert_eq!(first_place["status"], "active");

    let browser = Browser::start().await;
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            "#seat-page[data-queue=\"on\"] .seat.available[data-seat-no=\"3\"]",
            Duration::from_secs(10),
        )
        .await;
    browser.click("#create-user").await;
    browser.wait_for_text("#who", "Signed in as Guest").await;
    browser
        .wait_for_exact_text("#queue-place", "Your place in line: 2 (1 ahead of you)")
        .await;
    charge(&browser).await;

    // While waiting, a hold is refused with the API's own message and holds nothing; the
    // user keeps their place.
    browser.click(SEAT_3).await;
    browser
        .wait_for_text("#message", "not admitted yet: place 2 in line")
        .await;
    assert_eq!(app.db.scalar("SELECT count(*) FROM reservations"), 0);
    browser
        .wait_for(
            "#queue-place[data-status=\"waiting\"]",
            Duration::from_secs(5),
        )
        .await;
    browser.screenshot("seat-map-waiting").await;

    // The other user leaves: the page's polling finds the user admitted within seconds.
    let left = app
        .client
        .post(app.url(&format!("/queue/tokens/{}/leave", token_of(&first_place))))
        .bearer_auth(&first.token)
        .send()
        .await
        .unwrap();
    assert_eq!(left.status(), 200);
    browser
        .wait_for_text_within(
            "#queue-place",
            "It's your turn until",
            Duration::from_secs(8),
        )
        .await;

    hold_and_pay(&browser, 3).await;
    browser
        .wait_for(".seat.sold[data-seat-no=\"3\"]", Duration::from_secs(10))
        .await;
    assert_eq!(
        app.db
            .scalar("SELECT count(*) FROM reservations WHERE status = 'confirmed'"),
        1
    );
    // The payment ended the turn, and the page offers to join again; holding another seat
    // joins by itself (nobody waits now, so the turn starts at once).
    browser
        .wait_for_exact_text("#queue-place", "Your turn has ended.")
        .await;
    browser
        .wait_for("#queue-join:not([hidden])", Duration::from_secs(5))
        .await;
    browser.click(".seat[data-seat-no=\"4\"]").await;
    browser
        .wait_for(
            ".seat.held.mine[data-seat-no=\"4\"]",
            Duration::from_secs(10),
        )
        .await;
    browser
        .wait_for_text("#queue-place", "It's your turn until")
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_token_the_service_refuses_is_replaced_without_signing_the_user_out() {
    let (app, _queue) = spawn_queued_app(1, &[]).await;
    app.create_schedule(20, 1000).await;
    let browser = Browser::start().await;
    browser.goto(&app.url("/")).await;
    browser.click("#create-user").await;
    browser.wait_for_text("#who", "Signed in as Guest").await;
    browser
        .wait_for_text("#queue-place", "It's your turn until")
        .await;

    // A kept token the service does not know, sent by a click in the same script, so no
    // poll of the page can mend it first.
    browser
        .client
        .execute(
            "const kept = JSON.parse(localStorage.getItem('concert.queue'));
             kept.token = '00000000-0000-4000-8000-000000000000';
             localStorage.setItem('concert.queue', JSON.stringify(kept));
             document.querySelector(arguments[0]).click();",
            vec![SEAT_3.into()],
        )
        .await
        .unwrap();
    browser
        .wait_for_text("#message", "this Queue-Token is not one of yours")
        .await;
    browser.wait_for_text("#who", "Signed in as Guest").await;
    browser
        .wait_for_text("#queue-place", "It's your turn until")
        .await;

    browser.click(SEAT_3).await;
    browser
        .wait_for(
            ".seat.held.mine[data-seat-no=\"3\"]",
            Duration::from_secs(10),
        )
        .await;
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_queue_off_the_seat_map_holds_and_pays_without_asking_for_a_place() {
    let app = spawn_app().await;
    app.create_schedule(20, 1000).await;
    let browser = Browser::start().await;
    browser.goto(&app.url("/")).await;
    browser
        .wait_for(
            "#seat-page[data-queue=\"off\"] .seat.available[data-seat-no=\"3\"]",
            Duration::from_secs(10),
        )
        .await;
    browser.click("#create-user").await;
    browser.wait_for_text("#who", "Signed in as Guest").await;
    charge(&browser).await;
    hold_and_pay(&browser, 3).await;

    browser
        .wait_for_none("#queue", Duration::from_secs(1))
        .await;
    let requested = browser
        .client
        .execute(
            "return performance.getEntriesByType('resource').map((entry) => entry.name);",
            vec![],
        )
        .await
        .unwrap();
    let requested: Vec<&str> = requested
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|name| name.as_str())
        .collect();
    assert!(
        requested.iter().any(|name| name.contains("/reservations")),
        "the page's own requests are listed: {requested:?}"
    );
    assert!(
        !requested.iter().any(|name| name.contains("/queue/")),
        "no queue route is called with the queue off: {requested:?}"
    );
    browser.close().await;
}

/// Charges the signed-in user 5,000 points through the page.
async fn charge(browser: &Browser) {
    browser.fill("#charge-amount", "5000").await;
    browser.click("#charge").await;
    browser.wait_for_exact_text("#balance", "5000").await;
}

/// Clicks seat `seat_no`, waits until it is held by this user, and pays for it (1,000 points).
async fn hold_and_pay(browser: &Browser, seat_no: u32) {
    browser
        .click(&format!(".seat[data-seat-no=\"{seat_no}\"]"))
        .await;
    browser
        .wait_for(
            &format!(".seat.held.mine[data-seat-no=\"{seat_no}\"]"),
            Duration::from_secs(10),
        )
        .await;
    browser.click("#pay").await;
    browser
        .wait_for_text("#message", &format!("Paid 1000 points for seat {seat_no}"))
        .await;
}
