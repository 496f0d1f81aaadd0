//! Durability: `kill -9` of the real server during a burst of writes loses no acknowledged write
//! and leaves no torn state (every acknowledged object decrypts, the audit chain verifies).
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use support::{Conn, start};

mod support;

/// (plaintext, ciphertext, share) of an acknowledged encrypt; (name, value, share) of a secret.
type Acked = Arc<Mutex<Vec<(Vec<u8>, String, String)>>>;
type AckedSecrets = Arc<Mutex<Vec<(String, Vec<u8>, String)>>>;

async fn post(r: &Conn, path: &str, body: Value) -> reqwest::Result<(u16, Value)> {
    let resp = r
        .client
        .post(format!("{}{}", r.addr, path))
        .bearer_auth(&r.token)
        .json(&body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_a_write_burst_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (mut server, conn) = start(&data);

    // 32 writers encrypt (and store secrets) as fast as they can and record what was acknowledged.
    let acked: Acked = Arc::default();
    let secrets: AckedSecrets = Arc::default();
    let mut writers = Vec::new();
    for w in 0..32u32 {
        let (r, acked, secrets) = (Arc::clone(&conn), Arc::clone(&acked), Arc::clone(&secrets));
        writers.push(tokio::spawn(async move {
            for i in 0u32.. {
                let plaintext = format!("writer {w} message {i}").into_bytes();
                if i % 4 == 3 {
                    let name = format!("w{w}/s{i}");
                    let Ok(resp) = r
                        .client
                        .put(format!("{}/v1/secrets/{name}", r.addr))
                        .bearer_auth(&r.token)
                        .json(&json!({"value": URL_SAFE_NO_PAD.encode(&plaintext)}))
                        .send()
                        .await
                    else {
                        break;
                    };
                    if resp.status() != 200 {
                        break;
                    }
                    let Ok(body) = resp.json::<Value>().await else {
                        break;
                    };
                    secrets.lock().unwrap().push((
                        name,
                        plaintext,
                        body["share"].as_str().unwrap().to_owned(),
                    ));
                } else {
                    let Ok((200, body)) = post(
                        &r,
                        "/v1/safe/encrypt",
                        json!({"plaintext": URL_SAFE_NO_PAD.encode(&plaintext)}),
                    )
                    .await
                    else {
                        break;
                    };
                    acked.lock().unwrap().push((
                        plaintext,
                        body["ciphertext"].as_str().unwrap().to_owned(),
                        body["share"].as_str().unwrap().to_owned(),
                    ));
                }
            }
        }));
    }
    // Kill mid-burst, once a good number of writes have been acknowledged.
    while acked.lock().unwrap().len() < 400 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    server.kill().unwrap(); // SIGKILL: no graceful shutdown, no flush
    server.wait().unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let secrets = std::mem::take(&mut *secrets.lock().unwrap());
    assert!(acked.len() >= 400 && !secrets.is_empty());

    // Restart on the same data directory: everything acknowledged is there and intact.
    let (mut again_child, again) = start(&data);
    for (plaintext, ct, share) in &acked {
        let (status, body) = post(
            &again,
            "/v1/safe/decrypt",
            json!({"ciphertext": ct, "share": share}),
        )
        .await
        .unwrap();
        assert_eq!(status, 200, "an acknowledged encrypt was lost: {body}");
        assert_eq!(
            &URL_SAFE_NO_PAD
                .decode(body["plaintext"].as_str().unwrap())
                .unwrap(),
            plaintext
        );
    }
    for (name, value, share) in &secrets {
        let resp = again
            .client
            .get(format!("{}/v1/secrets/{name}", again.addr))
            .bearer_auth(&again.token)
            .header("daas-share", share)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "an acknowledged secret was lost");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            &URL_SAFE_NO_PAD
                .decode(body["value"].as_str().unwrap())
                .unwrap(),
            value
        );
    }
    let verify: Value = again
        .client
        .get(format!("{}/v1/audit/verify", again.addr))
        .bearer_auth(&again.token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        verify["ok"], true,
        "audit chain torn by the crash: {verify}"
    );
    again_child.kill().unwrap();
    again_child.wait().unwrap();
}
