//! Typed, zero-copy helpers over the race frame a plugin receives.
//!
//! [`Frame`] wraps the verified FlatBuffers view ([`fb::RaceFrame`]); every
//! accessor reads straight out of the host's bytes. The helpers answer the
//! questions every plugin asks: the cars in race order, a car by number, an
//! aggregate by name, the car ahead, the consecutive pairs (attacker behind,
//! defender ahead). Missing numbers (NaN in the frame) come back as `None`,
//! so a plugin cannot silently compute with a NaN.
//!
//! Enum values this SDK does not know (a newer host) read as
//! [`Flag::None`] / [`Compound::Unknown`], as the schema's rules require.

use crate::frame::{Compound, FrameError, PitEventKind, fb, read_frame};

pub use crate::frame::Flag;

/// Index of an aggregate in [`Frame::aggregate_names`]; look it up once per
/// frame with [`Frame::aggregate_index`] and read it per car with
/// [`Car::aggregate_at`], to avoid a name search per car.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AggIndex(pub usize);

/// One race frame, verified, read in place.
#[derive(Clone, Copy)]
pub struct Frame<'a> {
    fb: fb::RaceFrame<'a>,
}

impl std::fmt::Debug for Frame<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("seq", &self.seq())
            .field("window_start_ms", &self.window_start_ms())
            .field("cars", &self.car_count())
            .finish_non_exhaustive()
    }
}

impl<'a> Frame<'a> {
    /// Verifies `buf` (identifier, FlatBuffers verifier, frame version).
    pub fn from_bytes(buf: &'a [u8]) -> Result<Self, FrameError> {
        Ok(Frame {
            fb: read_frame(buf)?,
        })
    }

    /// Wraps an already verified view.
    pub fn from_view(fb: fb::RaceFrame<'a>) -> Self {
        Frame { fb }
    }

    /// The raw generated view, for fields these helpers do not cover.
    pub fn raw(&self) -> fb::RaceFrame<'a> {
        self.fb
    }

    pub fn window_start_ms(&self) -> i64 {
        self.fb.window_start_ms()
    }
    pub fn window_end_ms(&self) -> i64 {
        self.fb.window_end_ms()
    }
    /// 0-based window number within the session.
    pub fn seq(&self) -> u64 {
        self.fb.seq()
    }
    pub fn session(&self) -> &'a str {
        self.fb.session().unwrap_or_default()
    }

    /// Race-wide state (defaults when the frame has none).
    pub fn race(&self) -> Race<'a> {
        Race { fb: self.fb.race() }
    }

    /// Number of cars in the frame.
    pub fn car_count(&self) -> usize {
        self.fb.cars().map_or(0, |c| c.len())
    }

    /// Every car, in the frame's order (by racing number).
    pub fn cars(&self) -> impl Iterator<Item = Car<'a>> + 'a {
        let names = self.fb.aggregate_names();
        self.fb
            .cars()
            .into_iter()
            .flatten()
            .map(move |fb| Car { fb, names })
    }

    /// The car with racing number `number`.
    pub fn car(&self, number: u16) -> Option<Car<'a>> {
        let cars = self.fb.cars()?;
        let names = self.fb.aggregate_names();
        // Cars are sorted by number (schema); fall back to a scan if a writer broke that.
        let (mut lo, mut hi) = (0, cars.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let n = cars.get(mid).car();
            if n == number {
                return Some(Car {
                    fb: cars.get(mid),
                    names,
                });
            }
            if n < number { lo = mid + 1 } else { hi = mid }
        }
        self.cars().find(|c| c.number() == number)
    }

    /// Cars with a known position, by position (P1 first); then cars without
    /// one, by number. Retired cars are included (they usually have no
    /// position); use [`running_order`](Self::running_order) to leave them out.
    pub fn race_order(&self) -> Vec<Car<'a>> {
        let mut v = Vec::with_capacity(self.car_count());
        self.race_order_into(&mut v);
        v
    }

    /// Like [`race_order`](Self::race_order), into a reused vector (no
    /// allocation once it has grown).
    pub fn race_order_into(&self, out: &mut Vec<Car<'a>>) {
        out.clear();
        out.extend(self.cars());
        out.sort_by_key(|c| (c.position().is_none(), c.position(), c.number()));
    }

    /// The classified cars still in the race (known position, not retired), P1 first.
    pub fn running_order(&self) -> Vec<Car<'a>> {
        let mut v = self.race_order();
        v.retain(|c| c.position().is_some() && !c.retired());
        v
    }

    /// The car classified directly ahead of `car`, if any.
    pub fn car_ahead(&self, car: &Car<'_>) -> Option<Car<'a>> {
        let p = car.position()?;
        let ahead = p.checked_sub(1).filter(|&p| p > 0)?;
        self.cars().find(|c| c.position() == Some(ahead))
    }

    /// Consecutive pairs of the running order: for P2..Pn, the car and the
    /// car directly ahead (`attacker` behind, `defender` ahead).
    pub fn pairs(&self) -> Vec<Pair<'a>> {
        self.running_order()
            .windows(2)
            .map(|w| Pair {
                defender: w[0],
                attacker: w[1],
            })
            .collect()
    }

    /// Names of the per-car window aggregates, in their order.
    pub fn aggregate_names(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.fb.aggregate_names().into_iter().flatten()
    }

    /// Where the aggregate `name` (e.g. `speed_mean`) sits, if the frame has it.
    pub fn aggregate_index(&self, name: &str) -> Option<AggIndex> {
        self.aggregate_names().position(|n| n == name).map(AggIndex)
    }
}

/// Race-wide state at the end of the window.
#[derive(Clone, Copy)]
pub struct Race<'a> {
    fb: Option<fb::RaceState<'a>>,
}

impl<'a> Race<'a> {
    /// Leader's current lap (1-based; 0 = not started).
    pub fn lap(&self) -> u16 {
        self.fb.map_or(0, |r| r.lap())
    }
    /// Scheduled race distance, if known.
    pub fn total_laps(&self) -> Option<u16> {
        self.fb.map(|r| r.total_laps()).filter(|&n| n > 0)
    }
    /// Laps to go after the leader's current one, if the distance is known.
    pub fn laps_remaining(&self) -> Option<u16> {
        Some(self.total_laps()?.saturating_sub(self.lap()))
    }
    pub fn flag(&self) -> Flag {
        match self.fb.map_or(fb::Flag::None, |r| r.flag()) {
            fb::Flag::Green => Flag::Green,
            fb::Flag::Yellow => Flag::Yellow,
            fb::Flag::DoubleYellow => Flag::DoubleYellow,
            fb::Flag::Red => Flag::Red,
            fb::Flag::Chequered => Flag::Chequered,
            _ => Flag::None,
        }
    }
    pub fn safety_car(&self) -> bool {
        self.fb.is_some_and(|r| r.safety_car())
    }
    pub fn virtual_safety_car(&self) -> bool {
        self.fb.is_some_and(|r| r.virtual_safety_car())
    }
    /// The race has started (the formation lap is over). False before the
    /// start, and for sources that cannot tell.
    pub fn under_way(&self) -> bool {
        self.fb.is_some_and(|r| r.under_way())
    }
    /// Whether racing is neutralised (SC, VSC, red flag): gaps then say little
    /// about pace, and most models should hold their fire.
    pub fn neutralised(&self) -> bool {
        self.safety_car() || self.virtual_safety_car() || self.flag() == Flag::Red
    }
    /// Pit-lane crossings inside the window, in event-time order:
    /// `(ts_ms, car, kind)`; an unknown kind is skipped.
    pub fn pit_events(&self) -> impl Iterator<Item = (i64, u16, PitEventKind)> + 'a {
        self.fb
            .and_then(|r| r.pit_events())
            .into_iter()
            .flatten()
            .filter_map(|e| {
                let kind = match e.kind() {
                    fb::PitEventKind::PitIn => PitEventKind::PitIn,
                    fb::PitEventKind::PitOut => PitEventKind::PitOut,
                    _ => return None,
                };
                Some((e.ts_ms(), e.car(), kind))
            })
    }
}

/// One car in the frame.
#[derive(Clone, Copy)]
pub struct Car<'a> {
    fb: fb::CarFrame<'a>,
    names: Option<flatbuffers::Vector<'a, flatbuffers::ForwardsUOffset<&'a str>>>,
}

impl std::fmt::Debug for Car<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Car")
            .field("number", &self.number())
            .field("position", &self.position())
            .field("interval_s", &self.interval_s())
            .finish_non_exhaustive()
    }
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

impl<'a> Car<'a> {
    /// The raw generated view.
    pub fn raw(&self) -> fb::CarFrame<'a> {
        self.fb
    }
    /// Racing number (what insights name the car by).
    pub fn number(&self) -> u16 {
        self.fb.car()
    }
    /// 1-based classification, if known.
    pub fn position(&self) -> Option<u8> {
        Some(self.fb.position()).filter(|&p| p > 0)
    }
    /// Telemetry rows aggregated in this window.
    pub fn rows(&self) -> u32 {
        self.fb.rows()
    }
    pub fn lap(&self) -> u16 {
        self.fb.lap()
    }
    pub fn lap_distance_m(&self) -> Option<f32> {
        let d = self.fb.lap_distance_m();
        d.is_finite().then_some(d)
    }
    pub fn total_distance_m(&self) -> Option<f64> {
        finite(self.fb.total_distance_m())
    }
    /// Speed at the end of the window, km/h.
    pub fn speed_kmh(&self) -> Option<f32> {
        let s = self.fb.speed_kmh();
        s.is_finite().then_some(s)
    }
    /// Gap to the leader in seconds (`None` for the leader, lapped or unknown).
    pub fn gap_to_leader_s(&self) -> Option<f64> {
        finite(self.fb.gap_to_leader_s())
    }
    /// Interval to the car ahead in seconds (`None` for the leader or unknown).
    pub fn interval_s(&self) -> Option<f64> {
        finite(self.fb.interval_s())
    }
    pub fn in_pit(&self) -> bool {
        self.fb.in_pit()
    }
    pub fn retired(&self) -> bool {
        self.fb.retired()
    }
    pub fn tyre_compound(&self) -> Compound {
        match self.fb.tyre_compound() {
            fb::Compound::Soft => Compound::Soft,
            fb::Compound::Medium => Compound::Medium,
            fb::Compound::Hard => Compound::Hard,
            fb::Compound::Intermediate => Compound::Intermediate,
            fb::Compound::Wet => Compound::Wet,
            _ => Compound::Unknown,
        }
    }
    pub fn tyre_age_laps(&self) -> u16 {
        self.fb.tyre_age_laps()
    }
    /// The car's last completed lap in seconds, once it has one.
    pub fn last_lap_s(&self) -> Option<f64> {
        finite(self.fb.last_lap_s())
    }
    /// The raw DRS code (0/1 off, 8 eligible, 10/12/14 open; 0 without a DRS channel).
    pub fn drs(&self) -> u8 {
        self.fb.drs()
    }
    /// DRS flap open (codes 10, 12, 14).
    pub fn drs_open(&self) -> bool {
        self.fb.drs() >= 10
    }
    /// Completed pit stops so far.
    pub fn pit_stops(&self) -> u8 {
        self.fb.pit_stops()
    }
    /// The aggregate at `index` ([`Frame::aggregate_index`]), if present and a number.
    pub fn aggregate_at(&self, index: AggIndex) -> Option<f64> {
        let v = self.fb.aggregates()?;
        (index.0 < v.len()).then(|| v.get(index.0)).and_then(finite)
    }
    /// The aggregate named `name` (e.g. `speed_mean`), if present and a number.
    pub fn aggregate(&self, name: &str) -> Option<f64> {
        let i = self.names?.iter().position(|n| n == name)?;
        self.aggregate_at(AggIndex(i))
    }
}

/// Two cars next to each other in the running order.
#[derive(Debug, Clone, Copy)]
pub struct Pair<'a> {
    /// The car behind.
    pub attacker: Car<'a>,
    /// The car directly ahead.
    pub defender: Car<'a>,
}

impl Pair<'_> {
    /// The gap between them: the attacker's interval to the car ahead.
    pub fn interval_s(&self) -> Option<f64> {
        self.attacker.interval_s()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{CarFrameData, RaceFrameData, RaceStateData};

    fn car(number: u16, position: u8, interval_s: f64) -> CarFrameData {
        CarFrameData {
            car: number,
            position,
            interval_s,
            aggregates: vec![200.0 + f64::from(number), f64::NAN],
            ..Default::default()
        }
    }

    fn frame() -> Vec<u8> {
        RaceFrameData {
            window_start_ms: 5_000,
            window_end_ms: 6_000,
            seq: 5,
            session: "t".into(),
            race: RaceStateData {
                lap: 10,
                total_laps: 71,
                safety_car: true,
                ..Default::default()
            },
            cars: vec![
                car(1, 2, 0.8),
                car(4, 1, f64::NAN),
                car(11, 0, f64::NAN),
                car(16, 3, 1.2),
                CarFrameData {
                    retired: true,
                    ..car(55, 4, 30.0)
                },
            ],
            aggregate_names: vec!["speed_mean".into(), "rpm_max".into()],
            kernels: vec![],
        }
        .to_flatbuffer()
    }

    #[test]
    fn order_pairs_and_lookups() {
        let bytes = frame();
        let f = Frame::from_bytes(&bytes).unwrap();
        let order: Vec<u16> = f.race_order().iter().map(Car::number).collect();
        assert_eq!(order, [4, 1, 16, 55, 11]);
        let running: Vec<u16> = f.running_order().iter().map(Car::number).collect();
        assert_eq!(running, [4, 1, 16]);
        let pairs: Vec<(u16, u16)> = f
            .pairs()
            .iter()
            .map(|p| (p.attacker.number(), p.defender.number()))
            .collect();
        assert_eq!(pairs, [(1, 4), (16, 1)]);
        assert_eq!(f.pairs()[1].interval_s(), Some(1.2));
        let c16 = f.car(16).unwrap();
        assert_eq!(f.car_ahead(&c16).unwrap().number(), 1);
        assert!(f.car_ahead(&f.car(4).unwrap()).is_none());
        assert!(f.car(99).is_none());
        assert_eq!(c16.aggregate("speed_mean"), Some(216.0));
        assert_eq!(c16.aggregate("rpm_max"), None, "NaN reads as None");
        assert_eq!(c16.aggregate("nope"), None);
        let i = f.aggregate_index("speed_mean").unwrap();
        assert_eq!(f.car(1).unwrap().aggregate_at(i), Some(201.0));
        assert_eq!(f.car(1).unwrap().aggregate_at(AggIndex(7)), None);
        assert_eq!(f.car(4).unwrap().interval_s(), None);
        assert_eq!(f.car(11).unwrap().position(), None);
        let r = f.race();
        assert_eq!(
            (r.lap(), r.total_laps(), r.laps_remaining()),
            (10, Some(71), Some(61))
        );
        assert!(r.neutralised() && r.safety_car());
        assert_eq!((f.seq(), f.window_start_ms(), f.session()), (5, 5_000, "t"));
    }

    #[test]
    fn an_empty_frame_has_no_cars() {
        let bytes = RaceFrameData::default().to_flatbuffer();
        let f = Frame::from_bytes(&bytes).unwrap();
        assert_eq!(f.car_count(), 0);
        assert!(Frame::from_bytes(&bytes[..bytes.len() - 4]).is_err());
        assert!(f.race_order().is_empty() && f.pairs().is_empty());
        assert_eq!(f.race().total_laps(), None);
    }
}
