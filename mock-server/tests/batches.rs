//! `batch` and `batch_done` over real WebSockets on 127.0.0.1 (PROTOCOL.md, "Several writes
//! in one frame"): the answers in list order, `batch_done`, then the pushes, to the writer
//! and the user's other devices; a malformed batch applies nothing and leaves the
//! connection open.

use serde_json::{Value, json};

mod support;
use support::*;

fn set(id: u64, key: &str, value: Value, local_rev: u64) -> Value {
    json!({"type":"set","id":id,"key":key,"value":value,"local_rev":local_rev})
}

#[tokio::test]
async fn a_batch_is_answered_in_list_order_then_batch_done_then_pushed() {
    let s = server(&[]).await;
    let mut phone = connect(&s).await;
    let mut laptop = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    hello(&mut laptop, "demo-token", "laptop", 0).await;
    let writes = [
        set(1, "like/a", json!(true), 1),
        set(2, "settings/volume", json!(101), 1),
        json!({"type":"command","id":3,"key":"comments/p","name":"add_comment","args":{"text":" hi "},"local_rev":1}),
    ];
    send(&mut phone, json!({"type":"batch","id":7,"writes":writes})).await;
    assert_eq!(
        recv(&mut phone).await,
        json!({"type":"ack","id":1,"key":"like/a","value":true,"rev":1,"duplicate":false})
    );
    let reject = recv(&mut phone).await;
    assert_eq!(
        (&reject["type"], &reject["id"], &reject["code"]),
        (&json!("reject"), &json!(2), &json!("invalid_value"))
    );
    let ack = recv(&mut phone).await;
    assert_eq!((&ack["id"], &ack["rev"]), (&json!(3), &json!(2)));
    assert_eq!(ack["value"][0]["text"], "hi");
    assert_eq!(
        recv(&mut phone).await,
        json!({"type":"batch_done","id":7,"count":3})
    );
    for ws in [&mut phone, &mut laptop] {
        let revs = [recv(ws).await, recv(ws).await].map(|p| (p["type"].clone(), p["rev"].clone()));
        assert_eq!(
            revs,
            [(json!("push"), json!(1)), (json!("push"), json!(2))],
            "the pushes after the answers, in revision order"
        );
    }
    s.shutdown().await;
}

#[tokio::test]
async fn a_malformed_batch_is_one_bad_message_and_nothing_is_applied() {
    let s = server(&[]).await;
    let mut phone = connect(&s).await;
    hello(&mut phone, "demo-token", "phone", 0).await;
    let nested = json!({"type":"batch","id":8,"writes":[set(9, "like/b", json!(true), 1)]});
    send(
        &mut phone,
        json!({"type":"batch","id":4,"writes":[set(1, "like/a", json!(true), 1), nested]}),
    )
    .await;
    let e = recv(&mut phone).await;
    assert_eq!(
        (&e["type"], &e["code"], &e["id"]),
        (&json!("error"), &json!("bad_message"), &json!(4))
    );
    assert!(e["message"].as_str().unwrap().contains("writes[1]"), "{e}");
    send(&mut phone, json!({"type":"batch","id":5,"writes":[]})).await;
    assert_eq!(recv(&mut phone).await["code"], "bad_message");
    // Still open, and the good write of the bad batch was never applied: it is new now.
    send(&mut phone, set(6, "like/a", json!(true), 1)).await;
    let ack = recv(&mut phone).await;
    assert_eq!(
        (&ack["type"], &ack["rev"], &ack["duplicate"]),
        (&json!("ack"), &json!(1), &json!(false))
    );
    s.shutdown().await;
}
