// Call-progress detection: plan tables, Goertzel signature purity per block, cadence matcher.
#include "osvi/audio/call_progress.hpp"

#include <algorithm>
#include <cmath>

#include "osvi/audio/format.hpp"

namespace osvi::audio {
namespace {

using PT = ProgressTone;

struct SigSpec {
  std::array<double, 2> f{};
  int n = 0;
  bool modulated = false;
  int sit = -1;
};
struct ToneSpec {
  PT tone = PT::none;
  int sig = 0;
  std::array<std::array<int, 2>, 2> pattern{};
  int npairs = 0;
  int cycles = 1;
};
struct PlanSpec {
  std::string_view name;
  int block_ms;  // 25 ms resolves 440 from 480 Hz (orthogonal bins); 20 ms makes 40 ms windows for 400*25
  std::array<SigSpec, 8> sigs;
  int nsigs;
  std::array<ToneSpec, 4> tones;
};

constexpr double kModulationHz = 25.0;

constexpr std::array<PlanSpec, 3> kPlans = {{
    {"us",
     25,
     {{{{350, 440}, 2, false, -1},
       {{440, 480}, 2, false, -1},
       {{480, 620}, 2, false, -1},
       {{913.8, 0}, 1, false, 0},
       {{985.2, 0}, 1, false, 0},
       {{1370.6, 0}, 1, false, 1},
       {{1428.5, 0}, 1, false, 1},
       {{1776.7, 0}, 1, false, 2}}},
     8,
     {{{PT::dial, 0, {}, 0, 1},
       {PT::ringback, 1, {{{2000, 4000}}}, 1, 1},
       {PT::busy, 2, {{{500, 500}}}, 1, 2},
       {PT::reorder, 2, {{{250, 250}}}, 1, 3}}}},
    {"eu",
     20,
     {{{{425, 0}, 1, false, -1},
       {{950, 0}, 1, false, 0},
       {{1400, 0}, 1, false, 1},
       {{1800, 0}, 1, false, 2}}},
     4,
     {{{PT::dial, 0, {}, 0, 1},
       {PT::ringback, 0, {{{1000, 4000}}}, 1, 1},
       {PT::busy, 0, {{{500, 500}}}, 1, 2},
       {PT::reorder, 0, {{{250, 250}}}, 1, 3}}}},
    {"in",
     20,
     {{{{400, 0}, 1, true, -1}, {{950, 0}, 1, false, 0}, {{1400, 0}, 1, false, 1}, {{1800, 0}, 1, false, 2}}},
     4,
     {{{PT::dial, 0, {}, 0, 1},
       {PT::ringback, 0, {{{400, 200}, {400, 2000}}}, 2, 1},
       {PT::busy, 0, {{{750, 750}}}, 1, 2},
       {PT::reorder, 0, {{{250, 250}}}, 1, 3}}}},
}};

const PlanSpec* find_plan(std::string_view name) {
  for (const auto& p : kPlans)
    if (p.name == name) return &p;
  return nullptr;
}

constexpr int kSitMinMs = 200, kSitMaxMs = 450, kSitMaxGapMs = 100;
constexpr int kForgetMs = 7000;  // longer than any off-period of any plan

}  // namespace

const char* to_string(ProgressTone tone) {
  switch (tone) {
    case PT::none:
      return "none";
    case PT::dial:
      return "dial";
    case PT::ringback:
      return "ringback";
    case PT::busy:
      return "busy";
    case PT::reorder:
      return "reorder";
    case PT::sit:
      return "sit";
  }
  return "?";
}

Result<CallProgressDetector> CallProgressDetector::create(int rate, const CallProgressConfig& config) {
  if (!valid_call_rate(rate)) return make_error("call_progress: rate must be 8000 or 16000");
  if (find_plan(config.plan) == nullptr)
    return make_error("call_progress: unknown plan '" + config.plan + "' (us, eu, in)");
  if (config.min_purity <= 0.0 || config.min_purity > 1.0)
    return make_error("call_progress: min_purity in (0, 1]");
  if (config.freq_tolerance < 0.0 || config.freq_tolerance > 0.05)
    return make_error("call_progress: freq_tolerance in [0, 0.05]");
  return CallProgressDetector(rate, config);
}

CallProgressDetector::CallProgressDetector(int rate, const CallProgressConfig& config)
    : rate_(rate), cfg_(config) {
  const PlanSpec& plan = *find_plan(cfg_.plan);
  block_ = static_cast<size_t>(rate / 1000 * plan.block_ms);
  const double a = dbfs_to_amplitude(cfg_.min_level_dbfs);
  min_mean_square_ = static_cast<float>(a * a / 2.0);
  swing_ = static_cast<float>(std::pow(10.0, cfg_.max_level_swing_db / 10.0));
  std::vector<double> freqs;
  const auto add_component = [&](double f) {
    Component c;
    const std::array<double, 3> fs = {f * (1.0 - cfg_.freq_tolerance), f, f * (1.0 + cfg_.freq_tolerance)};
    for (size_t k = 0; k < 3; ++k) {
      auto it = std::find(freqs.begin(), freqs.end(), fs[k]);
      if (it == freqs.end()) {
        freqs.push_back(fs[k]);
        filters_.emplace_back(fs[k], rate_, block_);
        it = freqs.end() - 1;
      }
      c.filters[k] = static_cast<uint16_t>(it - freqs.begin());
    }
    return c;
  };
  for (int i = 0; i < plan.nsigs; ++i) {
    const SigSpec& s = plan.sigs[static_cast<size_t>(i)];
    Signature sig;
    sig.modulated = s.modulated;
    sig.sit_index = s.sit;
    if (s.modulated) {
      sig.comps[0] = add_component(s.f[0]);
      sig.comps[1] = add_component(s.f[0] - kModulationHz);
      sig.comps[2] = add_component(s.f[0] + kModulationHz);
      sig.ncomps = 3;
    } else {
      for (int k = 0; k < s.n; ++k)
        sig.comps[static_cast<size_t>(k)] = add_component(s.f[static_cast<size_t>(k)]);
      sig.ncomps = s.n;
    }
    sigs_.push_back(sig);
  }
  for (const ToneSpec& t : plan.tones)
    cadences_.push_back(Cadence{t.tone, t.sig, t.pattern, t.npairs, t.cycles});
  x_prev_.assign(filters_.size(), {});
  x_cur_.assign(filters_.size(), {});
}

void CallProgressDetector::reset() {
  for (auto& g : filters_) g.reset();
  energy_ = e_prev_ = e_cur_ = 0.0F;
  filled_ = 0;
  have_prev_ = false;
  pos_ = 0;
  run_sig_ = -1;
  run_blocks_ = 0;
  hist_head_ = hist_count_ = 0;
  last_tone_end_ = 0;
  current_ = PT::none;
  ev_head_ = ev_count_ = 0;
}

void CallProgressDetector::process(std::span<const int16_t> in) {
  for (int16_t s : in) {
    const float x = s;
    for (auto& g : filters_) g.push(x);
    energy_ += x * x;
    ++pos_;
    if (++filled_ == block_) end_block();
  }
}

float CallProgressDetector::component_power(const Component& c, bool window) const {
  float best = 0.0F;
  for (uint16_t f : c.filters) {
    const std::complex<float> x = window ? x_prev_[f] + x_cur_[f] * filters_[f].block_rotation() : x_cur_[f];
    best = std::max(best, tone_energy(x, window ? 2 * block_ : block_));
  }
  return best;
}

void CallProgressDetector::end_block() {
  std::swap(x_prev_, x_cur_);  // swaps storage only: no allocation
  for (size_t i = 0; i < filters_.size(); ++i) {
    x_cur_[i] = filters_[i].result();
    filters_[i].reset();
  }
  e_prev_ = e_cur_;
  e_cur_ = energy_;
  energy_ = 0.0F;
  filled_ = 0;
  const bool window_ok = have_prev_;
  have_prev_ = true;

  int best = -1;
  float best_purity = 0.0F, best_power = 0.0F;
  for (size_t i = 0; i < sigs_.size(); ++i) {
    const Signature& s = sigs_[i];
    if (s.modulated && !window_ok) continue;
    std::array<float, 3> p{};
    float band = 0.0F;
    for (int k = 0; k < s.ncomps; ++k) {
      p[static_cast<size_t>(k)] = component_power(s.comps[static_cast<size_t>(k)], s.modulated);
      band += p[static_cast<size_t>(k)];
    }
    const float total = s.modulated ? e_prev_ + e_cur_ : e_cur_;
    const size_t n = s.modulated ? 2 * block_ : block_;
    if (band / static_cast<float>(n) < min_mean_square_ || total <= 0.0F) continue;
    if (s.modulated && p[0] < 0.4F * band) continue;
    if (!s.modulated && s.ncomps == 2 && std::min(p[0], p[1]) < 0.1F * band) continue;
    const float purity = band / total;
    if (purity >= static_cast<float>(cfg_.min_purity) && purity > best_purity) {
      best = static_cast<int>(i);
      best_purity = purity;
      best_power = band / static_cast<float>(n);
    }
  }
  on_block(best, best_power);
}

void CallProgressDetector::on_block(int sig, float power) {
  const uint64_t block_start = pos_ - block_;
  if (sig >= 0 && sig == run_sig_) {
    if (run_blocks_ >= 2) {  // the previous block is interior now: neither the first nor the last
      run_min_ = run_blocks_ == 2 ? run_last_ : std::min(run_min_, run_last_);
      run_max_ = run_blocks_ == 2 ? run_last_ : std::max(run_max_, run_last_);
    }
    run_last_ = power;
    ++run_blocks_;
  } else {
    if (run_sig_ >= 0) close_run();
    if (sig >= 0) {
      check_cadences(block_start);
      run_sig_ = sig;
      run_start_ = block_start;
      run_blocks_ = 1;
      run_last_ = power;
    }
  }
  if (run_sig_ >= 0) {
    last_tone_end_ = pos_;
    for (const Cadence& c : cadences_)
      if (c.npairs == 0 && c.sig == run_sig_ &&
          static_cast<uint64_t>(run_blocks_) * block_ >=
              static_cast<uint64_t>(cfg_.dial_min_ms) * rate_ / 1000) {
        const bool stable = run_blocks_ < 4 || run_max_ <= swing_ * run_min_;
        if (stable) classify(c.tone, run_start_);
      }
  } else if (current_ != PT::none &&
             pos_ - last_tone_end_ > static_cast<uint64_t>(kForgetMs) * rate_ / 1000) {
    current_ = PT::none;
  }
}

void CallProgressDetector::close_run() {
  Segment seg{run_sig_, run_start_, pos_ - block_, run_blocks_ < 4 || run_max_ <= swing_ * run_min_};
  if (hist_count_ == hist_.size()) {
    hist_head_ = (hist_head_ + 1) % hist_.size();
    --hist_count_;
  }
  hist_[(hist_head_ + hist_count_) % hist_.size()] = seg;
  ++hist_count_;
  run_sig_ = -1;
  run_blocks_ = 0;
  check_sit();
}

bool CallProgressDetector::near(uint64_t measured, int nominal_ms) const {
  const double ms = static_cast<double>(measured) * 1000.0 / rate_;
  return std::abs(ms - nominal_ms) <= cfg_.cadence_tolerance_ms + cfg_.cadence_tolerance * nominal_ms;
}

void CallProgressDetector::check_cadences(uint64_t next_start) {
  for (const Cadence& c : cadences_) {
    if (c.npairs == 0) continue;
    const size_t k = static_cast<size_t>(c.npairs * c.cycles);
    if (hist_count_ < k) continue;
    bool ok = true;
    std::array<uint64_t, 8> on{}, off{};
    for (size_t i = 0; i < k && ok; ++i) {
      const Segment& s = hist_[(hist_head_ + hist_count_ - k + i) % hist_.size()];
      const uint64_t next =
          i + 1 < k ? hist_[(hist_head_ + hist_count_ - k + i + 1) % hist_.size()].start : next_start;
      ok = s.sig == c.sig && s.stable;
      on[i] = s.end - s.start;
      off[i] = next - s.end;
    }
    if (!ok) continue;
    for (size_t r = 0; r < static_cast<size_t>(c.npairs); ++r) {
      bool match = true;
      for (size_t i = 0; i < k && match; ++i) {
        const auto& p = c.pattern[(i + r) % static_cast<size_t>(c.npairs)];
        match = near(on[i], p[0]) && near(off[i], p[1]);
      }
      if (match) {
        classify(c.tone, hist_[(hist_head_ + hist_count_ - k) % hist_.size()].start);
        return;
      }
    }
  }
}

void CallProgressDetector::check_sit() {
  if (hist_count_ < 3) return;
  const auto at = [&](size_t back) -> const Segment& {
    return hist_[(hist_head_ + hist_count_ - 1 - back) % hist_.size()];
  };
  for (size_t i = 0; i < 3; ++i) {
    const Segment& s = at(2 - i);
    if (sigs_[static_cast<size_t>(s.sig)].sit_index != static_cast<int>(i)) return;
    const double ms = static_cast<double>(s.end - s.start) * 1000.0 / rate_;
    if (ms < kSitMinMs || ms > kSitMaxMs) return;
    if (i > 0 && static_cast<double>(s.start - at(3 - i).end) * 1000.0 / rate_ > kSitMaxGapMs) return;
  }
  classify(PT::sit, at(2).start);
}

void CallProgressDetector::classify(ProgressTone tone, uint64_t started_at) {
  if (tone == current_) return;
  current_ = tone;
  if (ev_count_ == events_.size()) return;  // cannot happen with one event per block and a poll per frame
  events_[(ev_head_ + ev_count_) % events_.size()] = {tone, started_at, pos_};
  ++ev_count_;
}

std::optional<CallProgressEvent> CallProgressDetector::next_event() {
  if (ev_count_ == 0) return std::nullopt;
  const CallProgressEvent e = events_[ev_head_];
  ev_head_ = (ev_head_ + 1) % events_.size();
  --ev_count_;
  return e;
}

}  // namespace osvi::audio
