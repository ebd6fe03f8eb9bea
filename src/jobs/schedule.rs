//! When a job runs: [`Schedule`] and the calendar arithmetic behind daily and monthly jobs.
//!
//! Times are milliseconds since the Unix epoch. Daily and monthly jobs are at a time of day in
//! a fixed offset from UTC ([`Schedule::Daily::utc_offset_minutes`]): a Worker has no time
//! zone database (bundling one would cost the `.wasm` far more than the rest of this module),
//! so a zone with daylight saving time is followed by changing the offset, not by its name.

use serde::{Deserialize, Serialize};

/// Milliseconds in a day.
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;

/// The latest time a job can run (the job index holds times as 15 digits: the year 33658).
/// A schedule whose next run would be later has no next run.
pub const LATEST_RUN_MS: i64 = 999_999_999_999_999;

/// Days of the week a daily job runs on, PTB's `days` (0 = Sunday … 6 = Saturday) as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Days(u8);

impl Days {
    /// Every day of the week (PTB's default).
    pub const ALL: Days = Days(0x7f);

    /// The days in `days` (0 = Sunday … 6 = Saturday, as PTB's `run_daily`); numbers past 6
    /// are an error, so that a Monday-first list is not misread silently.
    pub fn of(days: &[u8]) -> Result<Days, String> {
        let mut bits = 0u8;
        for &day in days {
            if day > 6 {
                return Err(format!(
                    "day {day} is not a day of the week (0 = Sunday … 6 = Saturday)"
                ));
            }
            bits |= 1 << day;
        }
        if bits == 0 {
            return Err("a daily job needs at least one day".into());
        }
        Ok(Days(bits))
    }

    /// Whether `weekday` (0 = Sunday) is one of them.
    pub fn contains(self, weekday: u32) -> bool {
        self.0 & (1 << weekday) != 0
    }
}

/// When a job runs after its first run. Stored as one flat object (`{"every": "daily",
/// "time_ms": .., "days": .., "utc_offset_minutes": ..}`): serde's internally tagged enums
/// cost a `.wasm` several times the code of a plain struct.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StoredSchedule", try_from = "StoredSchedule")]
pub enum Schedule {
    /// Once (PTB's `run_once`).
    Once,
    /// Every `interval_ms`, until `last_ms` if given (PTB's `run_repeating`).
    Repeating {
        /// The time between two runs.
        interval_ms: i64,
        /// No run after this time.
        last_ms: Option<i64>,
    },
    /// Every day in `days` at `time_ms` after midnight (PTB's `run_daily`).
    Daily {
        /// The time of day, ms after midnight in the offset.
        time_ms: i64,
        /// The days it runs on.
        days: Days,
        /// The offset from UTC the time of day is in, in minutes (UTC+2: 120).
        utc_offset_minutes: i32,
    },
    /// Every month on `day` at `time_ms` after midnight (PTB's `run_monthly`); `day` -1 is the
    /// month's last day, and a month without `day` (31 in April) is skipped, as in PTB.
    Monthly {
        /// The time of day, ms after midnight in the offset.
        time_ms: i64,
        /// The day of the month, 1 to 31, or -1 for the last.
        day: i8,
        /// The offset from UTC the time of day is in, in minutes.
        utc_offset_minutes: i32,
    },
}

/// Which kind of [`Schedule`] a stored one is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Every {
    Once,
    Repeating,
    Daily,
    Monthly,
}

/// A [`Schedule`] as stored: its kind and the numbers that kind has.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredSchedule {
    every: Every,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    time_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    days: Option<Days>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    day: Option<i8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    utc_offset_minutes: Option<i32>,
}

impl From<Schedule> for StoredSchedule {
    fn from(schedule: Schedule) -> Self {
        let mut stored = StoredSchedule {
            every: Every::Once,
            interval_ms: None,
            last_ms: None,
            time_ms: None,
            days: None,
            day: None,
            utc_offset_minutes: None,
        };
        match schedule {
            Schedule::Once => {}
            Schedule::Repeating {
                interval_ms,
                last_ms,
            } => {
                stored.every = Every::Repeating;
                stored.interval_ms = Some(interval_ms);
                stored.last_ms = last_ms;
            }
            Schedule::Daily {
                time_ms,
                days,
                utc_offset_minutes,
            } => {
                stored.every = Every::Daily;
                (stored.time_ms, stored.days) = (Some(time_ms), Some(days));
                stored.utc_offset_minutes = Some(utc_offset_minutes);
            }
            Schedule::Monthly {
                time_ms,
                day,
                utc_offset_minutes,
            } => {
                stored.every = Every::Monthly;
                (stored.time_ms, stored.day) = (Some(time_ms), Some(day));
                stored.utc_offset_minutes = Some(utc_offset_minutes);
            }
        }
        stored
    }
}

impl TryFrom<StoredSchedule> for Schedule {
    type Error = String;

    fn try_from(stored: StoredSchedule) -> Result<Self, String> {
        let missing = |field: &str| format!("a {:?} schedule without {field}", stored.every);
        let offset = stored.utc_offset_minutes.unwrap_or(0);
        let schedule = match stored.every {
            Every::Once => Schedule::Once,
            Every::Repeating => Schedule::Repeating {
                interval_ms: stored.interval_ms.ok_or_else(|| missing("interval_ms"))?,
                last_ms: stored.last_ms,
            },
            Every::Daily => Schedule::Daily {
                time_ms: stored.time_ms.ok_or_else(|| missing("time_ms"))?,
                days: stored.days.ok_or_else(|| missing("days"))?,
                utc_offset_minutes: offset,
            },
            Every::Monthly => Schedule::Monthly {
                time_ms: stored.time_ms.ok_or_else(|| missing("time_ms"))?,
                day: stored.day.ok_or_else(|| missing("day"))?,
                utc_offset_minutes: offset,
            },
        };
        // A stored schedule meets the same checks as a new one.
        schedule.check()?;
        Ok(schedule)
    }
}

impl Schedule {
    /// Checks the schedule's numbers; `Err` says which is wrong.
    pub fn check(&self) -> Result<(), String> {
        let offset_ok = |minutes: i32| (-24 * 60..=24 * 60).contains(&minutes);
        match *self {
            Schedule::Once => Ok(()),
            Schedule::Repeating { interval_ms, .. } if interval_ms <= 0 => {
                Err(format!("interval {interval_ms} ms: it must be positive"))
            }
            Schedule::Repeating { .. } => Ok(()),
            Schedule::Daily {
                time_ms,
                utc_offset_minutes,
                ..
            }
            | Schedule::Monthly {
                time_ms,
                utc_offset_minutes,
                ..
            } if !(0..DAY_MS).contains(&time_ms) || !offset_ok(utc_offset_minutes) => Err(format!(
                "time of day {time_ms} ms at UTC offset {utc_offset_minutes} min: \
                 the time must be within a day and the offset within ±24 h"
            )),
            Schedule::Monthly { day, .. } if day != -1 && !(1..=31).contains(&day) => Err(format!(
                "day {day} of the month: 1 to 31, or -1 for the last day"
            )),
            _ => Ok(()),
        }
    }

    /// The first time this schedule runs strictly after `after_ms`, if it runs again.
    pub fn next_after(&self, after_ms: i64) -> Option<i64> {
        match *self {
            Schedule::Once => None,
            Schedule::Repeating { .. } => None,
            Schedule::Daily {
                time_ms,
                days,
                utc_offset_minutes,
            } => {
                let offset = i64::from(utc_offset_minutes) * 60_000;
                let local = after_ms.checked_add(offset)?;
                let today = local.div_euclid(DAY_MS);
                (today..today + 8)
                    .map(|day| (day, day * DAY_MS + time_ms))
                    .find(|&(day, at)| at > local && days.contains(weekday(day)))
                    .map(|(_, at)| at - offset)
            }
            Schedule::Monthly {
                time_ms,
                day,
                utc_offset_minutes,
            } => {
                let offset = i64::from(utc_offset_minutes) * 60_000;
                let local = after_ms.checked_add(offset)?;
                let (mut year, mut month, _) = civil_from_days(local.div_euclid(DAY_MS));
                // Within four years every day of the month 1–31 comes round.
                for _ in 0..48 {
                    let last = days_in_month(year, month);
                    let wanted = if day == -1 { last } else { day as u32 };
                    if wanted <= last {
                        let at = days_from_civil(year, month, wanted) * DAY_MS + time_ms;
                        if at > local {
                            return Some(at - offset);
                        }
                    }
                    (year, month) = if month == 12 {
                        (year + 1, 1)
                    } else {
                        (year, month + 1)
                    };
                }
                None
            }
        }
    }

    /// The run after the one due at `due_ms`, when it ran at `now_ms`: the first time after
    /// both, so that runs missed while nothing was running are not made up one by one but
    /// coalesced into the one that ran late (APScheduler's `coalesce`, PTB's default).
    pub fn following(&self, due_ms: i64, now_ms: i64) -> Option<i64> {
        let after = due_ms.max(now_ms);
        let next = match *self {
            // A stored interval that is not positive (a value changed by hand) ends the job
            // rather than dividing by it.
            Schedule::Repeating { interval_ms, .. } if interval_ms <= 0 => None,
            Schedule::Repeating {
                interval_ms,
                last_ms,
            } => {
                let periods = (after - due_ms).div_euclid(interval_ms) + 1;
                let next = due_ms.checked_add(periods.checked_mul(interval_ms)?)?;
                last_ms.is_none_or(|last| next <= last).then_some(next)
            }
            _ => self.next_after(after),
        };
        next.filter(|next| *next <= LATEST_RUN_MS)
    }
}

/// The day of the week of a day counted from 1970-01-01 (a Thursday): 0 = Sunday.
fn weekday(days: i64) -> u32 {
    (days + 4).rem_euclid(7) as u32
}

fn is_leap(year: i64) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 31,
    }
}

/// Days from 1970-01-01 to a proleptic Gregorian date, counted in 400-year eras (each has
/// 146,097 days) with years starting in March, so that February's leap day is the last of a
/// year and the month lengths repeat in a fixed pattern.
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let march_month = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * march_month + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date (year, month 1–12, day 1–31) of a day counted from 1970-01-01: the inverse of
/// [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let march_month = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * march_month + 2) / 5 + 1) as u32;
    let month = if march_month < 10 {
        march_month + 3
    } else {
        march_month - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-01 00:00 UTC, a Tuesday.
    const DEC_1: i64 = 1_796_083_200_000;
    const HOUR: i64 = 60 * 60 * 1000;

    #[test]
    fn dates_round_trip_and_match_known_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2026, 12, 1) * DAY_MS, DEC_1);
        assert_eq!(weekday(DEC_1 / DAY_MS), 2, "a Tuesday");
        assert_eq!(civil_from_days(days_from_civil(2000, 2, 29)), (2000, 2, 29));
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
    }

    #[test]
    fn a_daily_job_runs_on_its_days_at_its_time_in_its_offset() {
        // 09:00 at UTC+2 is 07:00 UTC; Tuesday 1 December at 10:00 UTC it has passed.
        let daily = Schedule::Daily {
            time_ms: 9 * HOUR,
            days: Days::of(&[1, 2]).unwrap(), // Monday, Tuesday
            utc_offset_minutes: 120,
        };
        assert_eq!(daily.next_after(DEC_1 + 6 * HOUR), Some(DEC_1 + 7 * HOUR));
        // Next: Monday 7 December.
        assert_eq!(
            daily.next_after(DEC_1 + 10 * HOUR),
            Some(DEC_1 + 6 * DAY_MS + 7 * HOUR)
        );
        assert!(Days::of(&[7]).is_err() && Days::of(&[]).is_err());
    }

    #[test]
    fn a_monthly_job_skips_months_without_its_day_and_knows_the_last() {
        let on = |day| Schedule::Monthly {
            time_ms: 0,
            day,
            utc_offset_minutes: 0,
        };
        // From 1 February 2027 (not a leap year), the 31st is 31 March.
        let feb_1 = days_from_civil(2027, 2, 1) * DAY_MS;
        let mar_31 = days_from_civil(2027, 3, 31) * DAY_MS;
        assert_eq!(on(31).next_after(feb_1), Some(mar_31));
        assert_eq!(
            on(-1).next_after(feb_1),
            Some(days_from_civil(2027, 2, 28) * DAY_MS)
        );
        assert_eq!(
            on(29).next_after(feb_1),
            Some(days_from_civil(2027, 3, 29) * DAY_MS)
        );
        assert!(on(0).check().is_err() && on(32).check().is_err() && on(-1).check().is_ok());
    }

    #[test]
    fn schedules_are_stored_flat_and_read_back() {
        let daily = Schedule::Daily {
            time_ms: 60_000,
            days: Days::of(&[0, 6]).unwrap(),
            utc_offset_minutes: -300,
        };
        let stored = serde_json::to_value(&daily).unwrap();
        assert_eq!(
            stored,
            serde_json::json!({"every": "daily", "time_ms": 60_000, "days": 65,
                               "utc_offset_minutes": -300})
        );
        assert_eq!(serde_json::from_value::<Schedule>(stored).unwrap(), daily);
        let once = serde_json::to_value(Schedule::Once).unwrap();
        assert_eq!(once, serde_json::json!({"every": "once"}));
        let broken = serde_json::json!({"every": "repeating"});
        assert!(serde_json::from_value::<Schedule>(broken).is_err());
    }

    #[test]
    fn runs_missed_are_coalesced_into_one_and_last_ends_a_repeating_job() {
        let every_minute = Schedule::Repeating {
            interval_ms: 60_000,
            last_ms: Some(DEC_1 + 10 * 60_000),
        };
        // On time: the next is one interval on.
        assert_eq!(every_minute.following(DEC_1, DEC_1), Some(DEC_1 + 60_000));
        // 3.5 minutes late: the runs at +1, +2 and +3 are not made up; the next is +4.
        let late = DEC_1 + 210_000;
        assert_eq!(every_minute.following(DEC_1, late), Some(DEC_1 + 240_000));
        // Past `last`: no more runs.
        assert_eq!(every_minute.following(DEC_1 + 10 * 60_000, DEC_1), None);
        assert_eq!(Schedule::Once.following(DEC_1, DEC_1), None);
        // A zero interval (only a hand-edited store has one) or a run past the index's last
        // time ends the job instead of panicking or breaking the index.
        let zero = Schedule::Repeating {
            interval_ms: 0,
            last_ms: None,
        };
        assert_eq!(zero.following(DEC_1, DEC_1), None);
        let huge = Schedule::Repeating {
            interval_ms: i64::MAX / 2,
            last_ms: None,
        };
        assert_eq!(huge.following(DEC_1, DEC_1), None);
    }
}
