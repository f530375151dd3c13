// tests/doctor/doctor_test_support.h — a doctor run against a fixture node (its files under a
// FixtureTree, tests/fixtures/fixture_tree.h), looking up a row of it, and the rule every row
// keeps (a fix exactly with a FAIL or WARN, a finding always), for the doctor's tests.
#pragma once

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "ipoib/doctor/doctor.h"
#include "tests/fixtures/fixture_tree.h"

namespace doctor_test {

inline const ipoib::doctor::CheckResult& find(
    const std::vector<ipoib::doctor::CheckResult>& results, const std::string& id) {
  for (const ipoib::doctor::CheckResult& r : results) {
    if (r.id == id) {
      return r;
    }
  }
  FAIL("no check with id " << id);
  throw std::logic_error("unreachable");
}

// Every problem comes with its fix; nothing else carries one.
inline void check_rows(const std::vector<ipoib::doctor::CheckResult>& results) {
  using ipoib::doctor::CheckStatus;
  for (const ipoib::doctor::CheckResult& r : results) {
    INFO(r.id);
    const bool problem = r.status == CheckStatus::kFail || r.status == CheckStatus::kWarn;
    CHECK(r.fix.empty() == !problem);
    CHECK_FALSE(r.finding.empty());
  }
}

// `options` aimed at the fixture node in `tree`: its files, and no verbs (no RDMA device here).
inline ipoib::doctor::DoctorOptions fixture_options(const ipoib::testing::FixtureTree& tree,
                                                    ipoib::doctor::DoctorOptions options = {}) {
  options.roots = ipoib::doctor::Roots::under(tree.path());
  options.use_verbs = ipoib::doctor::DoctorOptions::UseVerbs::kNo;
  return options;
}

// One doctor run on the fixture node in `tree`, every row held to check_rows.
inline std::vector<ipoib::doctor::CheckResult> run_on(const ipoib::testing::FixtureTree& tree,
                                                      ipoib::doctor::DoctorOptions options = {}) {
  auto results = ipoib::doctor::run_checks(fixture_options(tree, std::move(options)));
  check_rows(results);
  return results;
}

}  // namespace doctor_test
