//! The S3 object primitives the release history and the rollout record rest on,
//! against the emulator: a conditional create refuses a second writer, a
//! conditional replace refuses a stale ETag, listings page and sort, deletes obey
//! their ETag.

mod common;

use common::{Emulator, Fleet};
use stamp::names::BucketName;
use stamp::tools::process::StageLog;
use stamp::tools::s3::{ApiError, AwsApi, Put};

fn api(emu: &Emulator) -> AwsApi {
    let env = [("AWS_ACCESS_KEY_ID".to_owned(), "testing".to_owned()), ("AWS_SECRET_ACCESS_KEY".to_owned(), "testing".to_owned())];
    AwsApi::for_endpoint(Some(emu.url.clone()), None, None, &env)
}

#[test]
fn conditional_writes_listings_and_deletes_behave_as_s3_documents() {
    let emu = Emulator::start();
    let f = Fleet::new(&emu);
    f.aws(&["s3", "mb", "s3://objects-test", "--region", "us-east-1"]);
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let api = api(&emu);
        let b = BucketName::parse("objects-test").unwrap();
        let log = &mut StageLog::discard();
        let r = "us-east-1";
        let first = api.put_object(log, r, &b, "h/0001.json", "{\"n\":1}", Put::IfAbsent).await.unwrap();
        assert!(first.is_some(), "an ETag comes back");
        // A second create of the same key loses, whatever it holds.
        let again = api.put_object(log, r, &b, "h/0001.json", "{\"n\":2}", Put::IfAbsent).await;
        assert!(matches!(again, Err(ApiError::Precondition { .. })), "{again:?}");
        let obj = api.get_object(log, r, &b, "h/0001.json").await.unwrap().unwrap();
        assert_eq!(obj.text, "{\"n\":1}");
        assert_eq!(obj.etag, first);
        // Replace with the ETag read: ok; with the old one again: refused.
        let etag = obj.etag.unwrap();
        let second = api.put_object(log, r, &b, "h/0001.json", "{\"n\":3}", Put::IfMatch(etag.clone())).await.unwrap().unwrap();
        assert_ne!(second, etag);
        let stale = api.put_object(log, r, &b, "h/0001.json", "{\"n\":4}", Put::IfMatch(etag.clone())).await;
        assert!(matches!(stale, Err(ApiError::Precondition { .. })), "{stale:?}");
        assert_eq!(api.get_object(log, r, &b, "h/0001.json").await.unwrap().unwrap().text, "{\"n\":3}");
        // Listings: by prefix, every page (1000 keys a page), in key order.
        for i in (2..=1003).rev() {
            api.put_object(log, r, &b, &format!("h/{i:04}.json"), "{}", Put::Always).await.unwrap();
        }
        api.put_object(log, r, &b, "other/x.json", "{}", Put::Always).await.unwrap();
        let listed = api.list_objects(log, r, &b, "h/").await.unwrap();
        assert_eq!(listed.len(), 1003);
        assert_eq!(listed[0].key, "h/0001.json");
        assert_eq!(listed[1002].key, "h/1003.json");
        assert!(listed.windows(2).all(|w| w[0].key < w[1].key));
        let missing = BucketName::parse("no-such-bucket-here").unwrap();
        assert!(api.list_objects(log, r, &missing, "").await.unwrap().is_empty());
        // Deletes: a stale ETag is refused, the current one deletes, absent is fine.
        let del = api.delete_object(log, r, &b, "h/0001.json", Some(&etag)).await;
        assert!(matches!(del, Err(ApiError::Precondition { .. })), "{del:?}");
        api.delete_object(log, r, &b, "h/0001.json", Some(&second)).await.unwrap();
        assert!(api.get_object(log, r, &b, "h/0001.json").await.unwrap().is_none());
        api.delete_object(log, r, &b, "h/0001.json", None).await.unwrap();
    });
}
