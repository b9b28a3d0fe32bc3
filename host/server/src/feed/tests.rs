use super::*;
use futures_util::FutureExt;
use proptest::prelude::*;

fn ev(kind: &'static str, cars: &[&str], importance: f64) -> NewEvent {
    NewEvent {
        kind,
        cars: cars.iter().map(|c| c.to_string()).collect(),
        importance,
        data: serde_json::json!({"k": kind}),
    }
}

fn hub(replay: usize, queue: usize, max_lag: u64) -> FeedHub {
    FeedHub::new(HubConfig {
        replay_capacity: replay,
        queue_capacity: queue,
        max_lag,
    })
}

/// Everything the subscription has ready now, without waiting.
fn drain(sub: &mut Subscription) -> Vec<Item> {
    let mut out = Vec::new();
    while let Some(Some(item)) = sub.next().now_or_never() {
        out.push(item);
    }
    out
}

fn ids(items: &[Item]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|i| match i {
            Item::Event(e) => Some(e.id),
            Item::Notice(_) => None,
        })
        .collect()
}

#[test]
fn ids_start_at_one_and_increase() {
    let h = hub(10, 10, 10);
    assert_eq!(h.publish(ev(KIND_STORY, &[], 0.5)), 1);
    assert_eq!(h.publish(ev(KIND_STORY, &[], 0.5)), 2);
    assert_eq!(h.stats().last_id, 2);
}

#[test]
fn event_json_is_made_once_with_id_kind_cars_importance_data() {
    let h = hub(10, 10, 10);
    let mut sub = h.subscribe(Filter::default(), None, None);
    h.publish(ev(KIND_STORY, &["1", "4"], 0.75));
    let items = drain(&mut sub);
    let Item::Event(e) = &items[0] else { panic!() };
    let v: serde_json::Value = serde_json::from_str(&e.json).unwrap();
    assert_eq!(
        v,
        serde_json::json!({"id":1,"kind":"story","cars":["1","4"],"importance":0.75,"data":{"k":"story"}})
    );
}

#[test]
fn filters_by_kind_car_and_importance_race_wide_events_pass_car_filter() {
    let h = hub(100, 100, 100);
    let f = Filter {
        kinds: vec![KIND_STORY, KIND_RACE_STATE],
        cars: vec!["4".into()],
        min_importance: Some(0.5),
    };
    let mut sub = h.subscribe(f, None, None);
    h.publish(ev(KIND_STORY, &["4", "1"], 0.9)); // 1 yes
    h.publish(ev(KIND_STORY, &["1"], 0.9)); // 2 wrong car
    h.publish(ev(KIND_STORY, &["4"], 0.2)); // 3 too unimportant
    h.publish(ev(KIND_PREDICTION, &["4"], 0.9)); // 4 wrong kind
    h.publish(ev(KIND_RACE_STATE, &[], 1.0)); // 5 race-wide
    assert_eq!(ids(&drain(&mut sub)), vec![1, 5]);
}

#[test]
fn resume_replays_missed_events_then_goes_live() {
    let h = hub(100, 100, 100);
    for _ in 0..5 {
        h.publish(ev(KIND_STORY, &[], 0.5));
    }
    let mut sub = h.subscribe(Filter::default(), Some(3), None);
    h.publish(ev(KIND_STORY, &[], 0.5));
    assert_eq!(ids(&drain(&mut sub)), vec![4, 5, 6]);
}

#[test]
fn resume_from_evicted_id_says_reset_then_serves_the_buffer() {
    let h = hub(3, 100, 100);
    for _ in 0..6 {
        h.publish(ev(KIND_STORY, &[], 0.5));
    }
    let mut sub = h.subscribe(Filter::default(), Some(1), None);
    let items = drain(&mut sub);
    assert_eq!(
        items[0],
        Item::Notice(Notice::Reset {
            requested: 1,
            oldest: 4
        })
    );
    assert_eq!(ids(&items), vec![4, 5, 6]);
    // An id from the future (the server restarted): reset too.
    let mut sub = h.subscribe(Filter::default(), Some(99), None);
    let items = drain(&mut sub);
    assert!(matches!(
        items[0],
        Item::Notice(Notice::Reset { requested: 99, .. })
    ));
    assert_eq!(ids(&items), vec![4, 5, 6]);
}

#[test]
fn slow_subscriber_lags_recovers_everything_from_the_buffer() {
    let h = hub(100, 2, 50);
    let mut slow = h.subscribe(Filter::default(), None, None);
    let mut fast = h.subscribe(Filter::default(), None, None);
    let mut fast_ids = Vec::new();
    for _ in 0..10 {
        h.publish(ev(KIND_STORY, &[], 0.5));
        fast_ids.extend(ids(&drain(&mut fast)));
    }
    assert_eq!(fast_ids, (1..=10).collect::<Vec<_>>());
    let items = drain(&mut slow);
    assert_eq!(ids(&items), (1..=10).collect::<Vec<_>>());
    assert!(items.contains(&Item::Notice(Notice::Lagged { missed: 8 })));
    assert_eq!(h.stats().lagged, 1);
    assert_eq!(h.stats().cut, 0);
}

#[test]
fn subscriber_that_stays_behind_is_cut_off_and_its_kill_switch_fires() {
    let h = hub(100, 2, 5);
    let kill = ConnKill::new();
    let mut stalled = h.subscribe(Filter::default(), None, Some(kill.clone()));
    let mut fast = h.subscribe(Filter::default(), None, None);
    let mut fast_ids = Vec::new();
    for _ in 0..20 {
        h.publish(ev(KIND_STORY, &[], 0.5));
        fast_ids.extend(ids(&drain(&mut fast)));
    }
    assert_eq!(fast_ids, (1..=20).collect::<Vec<_>>());
    assert!(kill.is_fired());
    assert_eq!(h.stats().cut, 1);
    assert_eq!(h.stats().subscribers, 1);
    let items = drain(&mut stalled);
    assert_eq!(ids(&items), vec![1, 2]);
    assert!(matches!(
        items.last(),
        Some(Item::Notice(Notice::Cut { .. }))
    ));
    assert!(stalled.next().now_or_never().unwrap().is_none());
}

#[test]
fn dropping_a_subscription_unsubscribes() {
    let h = hub(10, 10, 10);
    let sub = h.subscribe(Filter::default(), None, None);
    assert_eq!(h.stats().subscribers, 1);
    drop(sub);
    assert_eq!(h.stats().subscribers, 0);
}

#[test]
fn recent_pages_newest_first_by_kind() {
    let h = hub(100, 10, 10);
    for i in 0..10u32 {
        let kind = if i.is_multiple_of(2) {
            KIND_STORY
        } else {
            KIND_METRIC
        };
        h.publish(ev(kind, &[], 0.5));
    }
    let page: Vec<u64> = h.recent(KIND_STORY, None, 3).iter().map(|e| e.id).collect();
    assert_eq!(page, vec![9, 7, 5]);
    let page: Vec<u64> = h
        .recent(KIND_STORY, Some(5), 3)
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(page, vec![3, 1]);
}

#[derive(Debug, Clone)]
enum Op {
    Publish { kind: usize, car: u8, imp: u8 },
    Subscribe { back: u8, filtered: bool },
    Drain { sub: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..3u8, 0..4u8).prop_map(|(kind, car, imp)| Op::Publish { kind, car, imp }),
        1 => (0..12u8, any::<bool>()).prop_map(|(back, filtered)| Op::Subscribe { back, filtered }),
        2 => (0..8usize).prop_map(|sub| Op::Drain { sub }),
    ]
}

struct Model {
    filter: Filter,
    resume: u64,
    got: Vec<Item>,
    sub: Subscription,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any interleaving of publish / subscribe-with-resume / read: a client
    /// resuming from id k gets exactly the matching events > k (a reset first
    /// when some were evicted, then the buffer), in order, no duplicates, even
    /// when its tiny queue overflows (the lag is recovered from the buffer).
    #[test]
    fn resume_delivers_exactly_the_missed_events_in_order(
        ops in proptest::collection::vec(op(), 1..120),
        queue in 1..4usize,
    ) {
        let replay = 8;
        let h = hub(replay, queue, replay as u64);
        let mut published: Vec<Event> = Vec::new();
        let mut subs: Vec<Model> = Vec::new();
        for op in ops {
            match op {
                Op::Publish { kind, car, imp } => {
                    let e = ev([KIND_STORY, KIND_METRIC][kind], &[["1", "4", "16"][car as usize]], imp as f64 / 3.0);
                    let id = h.publish(e.clone());
                    published.push(Event { id, kind: e.kind, cars: e.cars, importance: e.importance, data: e.data, json: "".into() });
                }
                Op::Subscribe { back, filtered } => {
                    let last = published.len() as u64;
                    let resume = last.saturating_sub(back as u64);
                    let filter = if filtered {
                        Filter { kinds: vec![KIND_STORY], cars: vec!["4".into()], min_importance: Some(0.5) }
                    } else { Filter::default() };
                    let sub = h.subscribe(filter.clone(), Some(resume), None);
                    subs.push(Model { filter, resume, got: Vec::new(), sub });
                }
                Op::Drain { sub } => {
                    if let Some(m) = subs.get_mut(sub) {
                        let items = drain(&mut m.sub);
                        m.got.extend(items);
                    }
                }
            }
        }
        for m in &mut subs {
            let items = drain(&mut m.sub);
            m.got.extend(items);
            let got = ids(&m.got);
            // Strictly increasing: in order, no duplicates.
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "{:?}", got);
            // A reset as the very first item: the resume point was already gone.
            let initial_reset = match m.got.first() {
                Some(Item::Notice(Notice::Reset { oldest, .. })) => Some(*oldest),
                _ => None,
            };
            let from = initial_reset.map_or(m.resume, |o| o - 1);
            let expected: Vec<u64> = published.iter()
                .filter(|e| e.id > from && m.filter.matches(e))
                .map(|e| e.id)
                .collect();
            let is_cut = |i: &Item| matches!(i, Item::Notice(Notice::Cut { .. }));
            let is_reset = |i: &Item| matches!(i, Item::Notice(Notice::Reset { .. }));
            let was_cut = m.got.iter().any(is_cut);
            let later_resets = m.got.iter().skip(1).filter(|i| is_reset(i)).count();
            // Never an event it did not ask for.
            prop_assert!(got.iter().all(|id| expected.contains(id)));
            if was_cut {
                // Cut off for staying behind: Cut is the last item.
                prop_assert!(m.got.last().is_some_and(is_cut));
                if later_resets == 0 {
                    prop_assert_eq!(&got[..], &expected[..got.len()]);
                }
            } else if later_resets == 0 {
                // Nothing the buffer held is ever lost, even under lag.
                prop_assert_eq!(&got, &expected);
            }
            if m.filter == Filter::default() {
                // Unfiltered, max_lag == replay: a lag never outlasts the buffer.
                prop_assert_eq!(later_resets, 0);
            }
            if initial_reset.is_some() {
                prop_assert!(m.resume + (replay as u64) < published.len() as u64);
            }
        }
    }
}

#[test]
fn plugin_insights_and_race_state_become_events() {
    use pitwall_plugin_sdk::insight::{Insight, Provenance, Story};
    let story = Story::builder("battle", "4 closes on 1")
        .cars(["4", "1"])
        .importance(0.8)
        .build()
        .unwrap();
    let insight = PublishedInsight {
        insight: Insight::new(
            Provenance::from_parts(60_000, "gap-watch@1.0.0", "none").unwrap(),
            story,
        ),
        content_hash: "abc".into(),
    };
    let e = NewEvent::from_insight(&insight).unwrap();
    assert_eq!((e.kind, e.importance), (KIND_STORY, 0.8));
    assert_eq!(e.cars, vec!["4", "1"]);
    assert_eq!(e.data["content_hash"], "abc");

    let frame = RaceFrameData {
        window_start_ms: 1_000,
        window_end_ms: 2_000,
        seq: 1,
        session: "test".into(),
        race: Default::default(),
        cars: Vec::new(),
        aggregate_names: Vec::new(),
        kernels: Vec::new(),
    };
    let e = NewEvent::race_state(&frame).unwrap();
    assert_eq!(e.kind, KIND_RACE_STATE);
    assert_eq!(e.data["seq"], 1);
    assert!(e.cars.is_empty());
}

#[test]
fn concurrent_publishers_give_unique_ids_seen_in_order_by_every_subscriber() {
    let h = hub(100_000, 100_000, 100_000);
    let mut subs: Vec<_> = (0..4)
        .map(|_| h.subscribe(Filter::default(), None, None))
        .collect();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || {
                (0..1_000)
                    .map(|_| h.publish(ev(KIND_STORY, &[], 0.5)))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (1..=4_000).collect::<Vec<_>>());
    for sub in &mut subs {
        assert_eq!(ids(&drain(sub)), all);
    }
}

/// A flood of one kind (per-car metrics every window) does not evict the rare
/// kind a client asked for: `/stories` still pages every story, and a client
/// filtered on stories resumes from its last id without a reset.
#[test]
fn a_metric_flood_keeps_stories_for_paging_and_filtered_resume() {
    let h = hub(8, 64, 64);
    let mut stories = Vec::new();
    for _ in 0..5 {
        stories.push(h.publish(ev(KIND_STORY, &["4"], 0.9)));
        for _ in 0..20 {
            h.publish(ev(KIND_METRIC, &["4"], 0.0));
        }
    }
    // The all-kinds buffer holds only metrics now.
    assert!(h.recent(KIND_METRIC, None, 100).len() == 8);
    let paged: Vec<u64> = h
        .recent(KIND_STORY, None, 10)
        .iter()
        .map(|e| e.id)
        .collect();
    assert_eq!(paged, stories.iter().rev().copied().collect::<Vec<_>>());
    let filter = Filter {
        kinds: vec![KIND_STORY],
        ..Filter::default()
    };
    let mut sub = h.subscribe(filter.clone(), Some(stories[1]), None);
    let items = drain(&mut sub);
    assert!(
        !items.iter().any(|i| matches!(i, Item::Notice(_))),
        "{items:?}"
    );
    assert_eq!(ids(&items), stories[2..].to_vec());
    // Once stories themselves are evicted, the filtered client is told.
    for _ in 0..10 {
        h.publish(ev(KIND_STORY, &[], 0.9));
    }
    let mut late = h.subscribe(filter, Some(stories[0]), None);
    let items = drain(&mut late);
    assert!(
        matches!(items[0], Item::Notice(Notice::Reset { .. })),
        "{items:?}"
    );
}
