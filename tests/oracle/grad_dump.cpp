// grad_dump: the suite's side of the PyTorch gradient oracle (tests/oracle/test_torch_oracle.py).
//   grad_dump --config F [--set section.key=value ...] [--checkpoint CKPT | --step S]
//             [--param-scale X] --output OUT.h5
// Builds the model in double precision from the config (parameters from train.seed, or from a
// training checkpoint), takes the global batch of one training step (--step S, default 0, or the
// checkpoint's next step), optionally multiplies every parameter by X (so that at initialisation
// the nonlinearities are used well beyond their near-linear range: GELU's cubic term, peaked router
// and attention softmaxes), runs one forward and backward, and writes to OUT.h5 (all double unless
// noted):
//   attributes loss_ce, aux_weighted, balance, z (summed over the MoE layers), step, num_params
//   /config        the effective config as TOML text
//   /names         the tensors' names, one a line, in layout order; /offsets, /sizes (int64)
//   /params        the flat parameter buffer; /grads its gradient of mean CE + weighted aux
//   /tokens, /targets  the batch (int32, [B*S] row-major)
//   /routing/block_<l>/expert_of, /kept  (int32, [N*K]) the decision of each MoE block, and
//                  attribute dropped (copies cut by the capacity)
// A test-only program: it reads internals (routing decisions) the run file does not record.
#include <hdf5.h>

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "data/corpus.hpp"
#include "io/checkpoint.hpp"
#include "model/transformer.hpp"
#include "programs/run_main.hpp"
#include "util/checked_parse.hpp"
#include "util/user_error.hpp"

namespace {

// Closes an HDF5 handle at scope exit.
struct Handle {
  hid_t id;
  herr_t (*close)(hid_t);
  Handle(hid_t h, herr_t (*c)(hid_t), const std::string& what) : id(h), close(c) {
    if (h < 0) throw std::runtime_error("HDF5: cannot " + what);
  }
  ~Handle() { close(id); }
  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
};

template <class T>
void write_dataset(hid_t loc, const std::string& name, const std::vector<T>& v, hid_t type) {
  const hsize_t n = v.size();
  Handle space(H5Screate_simple(1, &n, nullptr), H5Sclose, "create a dataspace");
  Handle set(H5Dcreate2(loc, name.c_str(), type, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
             H5Dclose, "create " + name);
  if (n > 0 && H5Dwrite(set.id, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, v.data()) < 0)
    throw std::runtime_error("HDF5: cannot write " + name);
}

void write_text(hid_t loc, const std::string& name, const std::string& text) {
  Handle type(H5Tcopy(H5T_C_S1), H5Tclose, "copy the string type");
  H5Tset_size(type.id, text.empty() ? 1 : text.size());
  Handle space(H5Screate(H5S_SCALAR), H5Sclose, "create a dataspace");
  Handle set(
      H5Dcreate2(loc, name.c_str(), type.id, space.id, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT),
      H5Dclose, "create " + name);
  if (H5Dwrite(set.id, type.id, H5S_ALL, H5S_ALL, H5P_DEFAULT, text.c_str()) < 0)
    throw std::runtime_error("HDF5: cannot write " + name);
}

template <class T>
void write_attr(hid_t loc, const std::string& name, T value, hid_t type) {
  Handle space(H5Screate(H5S_SCALAR), H5Sclose, "create a dataspace");
  Handle attr(H5Acreate2(loc, name.c_str(), type, space.id, H5P_DEFAULT, H5P_DEFAULT), H5Aclose,
              "create attribute " + name);
  if (H5Awrite(attr.id, type, &value) < 0)
    throw std::runtime_error("HDF5: cannot write attribute " + name);
}

template <class V>
std::vector<typename V::non_const_value_type> host(const V& v, moe::Index n) {
  using T = typename V::non_const_value_type;
  Kokkos::View<T*, Kokkos::HostSpace> h("grad_dump::host", std::size_t(n));
  Kokkos::deep_copy(h, Kokkos::subview(v, std::make_pair(moe::Index(0), n)));
  return std::vector<T>(h.data(), h.data() + n);
}

template <class T>
moe::Buffer<T> device(const std::vector<T>& v) {
  moe::Buffer<T> d("grad_dump::device", v.size());
  Kokkos::deep_copy(
      d, Kokkos::View<const T*, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>>(
             v.data(), v.size()));
  return d;
}

struct Args {
  std::string config, checkpoint, output;
  std::vector<std::string> sets;
  double param_scale = 1.0;
  std::int64_t step = 0;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw moe::UserError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--config")
      a.config = value();
    else if (arg == "--set")
      a.sets.push_back(value());
    else if (arg == "--checkpoint")
      a.checkpoint = value();
    else if (arg == "--output")
      a.output = value();
    else if (arg == "--step")
      a.step = moe::parse_integer(arg, value(), 0);
    else if (arg == "--param-scale")
      a.param_scale = moe::parse_number(arg, value(), 1e-3, 1e3);
    else if (arg.rfind("--kokkos-", 0) != 0)
      throw moe::UserError("unknown argument '" + arg +
                           "' (allowed: --config F --set k=v --checkpoint CKPT --step S "
                           "--param-scale X --output OUT.h5)");
  }
  if (a.output.empty()) throw moe::UserError("--output OUT.h5 is required");
  return a;
}

// Writes everything one forward + backward of `model` on `batch` produced.
void write_dump(const std::string& path, const moe::Config& cfg, moe::Transformer<double>& model,
                const moe::ForwardStats& st, const moe::Batch& batch, std::int64_t step) {
  const moe::ParamLayout& L = model.layout();
  std::string names;
  std::vector<std::int64_t> offsets, sizes;
  for (const auto& t : L.tensors) {
    names += t.name + "\n";
    offsets.push_back(t.offset);
    sizes.push_back(t.size);
  }
  const std::string tmp = path + ".tmp";
  {
    Handle f(H5Fcreate(tmp.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT), H5Fclose,
             "create " + tmp);
    write_attr(f.id, "loss_ce", st.loss, H5T_NATIVE_DOUBLE);
    write_attr(f.id, "aux_weighted", st.aux.weighted, H5T_NATIVE_DOUBLE);
    write_attr(f.id, "balance", st.aux.balance, H5T_NATIVE_DOUBLE);
    write_attr(f.id, "z", st.aux.z, H5T_NATIVE_DOUBLE);
    write_attr(f.id, "step", step, H5T_NATIVE_INT64);
    write_attr(f.id, "num_params", std::int64_t(L.total), H5T_NATIVE_INT64);
    write_text(f.id, "config", moe::config_to_toml(cfg));
    write_text(f.id, "names", names);
    write_dataset(f.id, "offsets", offsets, H5T_NATIVE_INT64);
    write_dataset(f.id, "sizes", sizes, H5T_NATIVE_INT64);
    write_dataset(f.id, "params", host(model.params(), L.total), H5T_NATIVE_DOUBLE);
    write_dataset(f.id, "grads", host(model.grads(), L.total), H5T_NATIVE_DOUBLE);
    write_dataset(f.id, "tokens", batch.tokens, H5T_NATIVE_INT32);
    write_dataset(f.id, "targets", batch.targets, H5T_NATIVE_INT32);
    Handle routing(H5Gcreate2(f.id, "routing", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                   "create /routing");
    const moe::Index N = moe::Index(batch.tokens.size());
    for (int i = 0; i < model.num_moe_layers(); ++i) {
      const auto& layer = model.moe_layer(i);
      const moe::Index NK = N * layer.router().slots_per_token();
      const std::string g = "block_" + std::to_string(model.moe_block(i));
      Handle grp(H5Gcreate2(routing.id, g.c_str(), H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT), H5Gclose,
                 "create /routing/" + g);
      const auto slot_of = host(layer.plan().slot_of, NK);
      std::vector<std::int32_t> kept(slot_of.size());
      for (std::size_t a = 0; a < kept.size(); ++a) kept[a] = slot_of[a] >= 0 ? 1 : 0;
      write_dataset(grp.id, "expert_of", host(layer.routing().expert_of, NK), H5T_NATIVE_INT32);
      write_dataset(grp.id, "kept", kept, H5T_NATIVE_INT32);
      write_attr(grp.id, "dropped", std::int64_t(layer.plan().dropped), H5T_NATIVE_INT64);
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error("cannot rename " + tmp + " to " + path);
}

int run(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const moe::Config cfg = moe::load_config(args.config, args.sets);
  const int B = cfg.train.batch_size;
  moe::Transformer<double> model(cfg, B);
  std::int64_t step = args.step;
  if (args.checkpoint.empty()) {
    model.init_parameters(cfg.train.seed);
  } else {
    moe::Checkpoint ck;
    try {
      ck = moe::read_checkpoint(args.checkpoint);
    } catch (const std::exception& e) {
      throw moe::UserError(std::string("--checkpoint: ") + e.what());
    }
    if (ck.shape != moe::model_shape(cfg.model) ||
        moe::Index(ck.params.size()) != model.num_params())
      throw moe::UserError("--checkpoint " + args.checkpoint +
                           " holds another model shape than the config");
    std::vector<double> p(ck.params.begin(), ck.params.end());
    Kokkos::deep_copy(model.params(), device(p));
    step = ck.next_step;
  }
  if (args.param_scale != 1.0) {
    std::vector<double> p = host(model.params(), model.num_params());
    for (double& v : p) v *= args.param_scale;
    Kokkos::deep_copy(model.params(), device(p));
  }
  const moe::Corpus corpus = moe::load_corpus(cfg);
  const moe::Batch batch = moe::train_batch(corpus, cfg, step);
  auto tokens = device(batch.tokens), targets = device(batch.targets);
  model.zero_grad();
  const moe::ForwardStats st = model.forward(tokens, targets, /*training=*/true, step);
  model.backward();
  write_dump(args.output, cfg, model, st, batch, step);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  return moe::run_mpi_main("grad_dump", argc, argv,
                           [&](const moe::Runtime&) { return run(argc, argv); });
}
