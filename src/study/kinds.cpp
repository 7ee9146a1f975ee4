// The one list of study kinds: the built-in four, then any registered later.
#include <algorithm>
#include <memory>
#include <mutex>
#include <stdexcept>

#include <fmt/format.h>

#include "powertrain/error.h"
#include "powertrain/study/kind.h"

namespace powertrain::study {
namespace {

struct Registry {
  std::mutex mutex;
  std::vector<std::unique_ptr<const StudyKindInfo>> kinds;  // stable addresses
};

void add(Registry& r, StudyKindInfo kind) {
  if (kind.name.empty()) throw std::invalid_argument("a study kind needs a name");
  if (!kind.parse || !kind.planned_count || !kind.plan || !kind.tables_of)
    throw std::invalid_argument(fmt::format("study kind '{}' lacks parse, planned_count, plan or tables_of", kind.name));
  for (const auto& k : r.kinds)
    if (k->name == kind.name) throw std::invalid_argument(fmt::format("study kind '{}' is registered twice", kind.name));
  r.kinds.push_back(std::make_unique<const StudyKindInfo>(std::move(kind)));
}

Registry& registry() {
  static Registry* r = [] {
    auto* out = new Registry;  // never destroyed: kinds are looked up until exit
    // The built-in kinds, in the order messages and `powertrain study --help` list them.
    add(*out, grid_kind());
    add(*out, pretrain_kind());
    add(*out, multitask_kind());
    add(*out, search_kind());
    return out;
  }();
  return *r;
}

}  // namespace

const StudyKindInfo* find_study_kind(std::string_view name) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  for (const auto& k : r.kinds)
    if (k->name == name) return k.get();
  return nullptr;
}

const StudyKindInfo& study_kind(std::string_view name) {
  if (const auto* k = find_study_kind(name)) return *k;
  throw ConfigError(fmt::format("unknown study kind '{}' (known: {})", name, study_kind_names()));
}

std::vector<const StudyKindInfo*> study_kinds() {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  std::vector<const StudyKindInfo*> out;
  for (const auto& k : r.kinds) out.push_back(k.get());
  return out;
}

std::string study_kind_names() {
  const auto kinds = study_kinds();
  std::string out;
  for (std::size_t i = 0; i < kinds.size(); ++i)
    out += (i == 0 ? "" : i + 1 == kinds.size() ? " or " : ", ") + kinds[i]->name;
  return out;
}

void register_study_kind(StudyKindInfo kind) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  add(r, std::move(kind));
}

bool unregister_study_kind(std::string_view name) {
  auto& r = registry();
  std::lock_guard lock(r.mutex);
  const auto it = std::find_if(r.kinds.begin(), r.kinds.end(), [&](const auto& k) { return k->name == name; });
  if (it == r.kinds.end()) return false;
  r.kinds.erase(it);
  return true;
}

}  // namespace powertrain::study
