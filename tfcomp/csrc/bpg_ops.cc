// TensorFlow ops over the C BPG codec (tfcomp/csrc/bpg): BpgEncode and BpgDecode.
//
// Both ops are stateless and thread-safe (every call creates its own x265 /
// libde265 instance), so tf.data can run them with num_parallel_calls.  They
// have no gradient.  A bad image, parameter or bitstream gives
// InvalidArgument with the codec's message; out of memory gives
// ResourceExhausted.

#include <cstdint>
#include <cstring>
#include <string>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "tensorflow/core/framework/tensor.h"

extern "C" {
#include "bpg/bpg.h"
}

namespace tfcomp {
namespace {

using ::tensorflow::DEVICE_CPU;
using ::tensorflow::OpKernel;
using ::tensorflow::OpKernelConstruction;
using ::tensorflow::OpKernelContext;
using ::tensorflow::Status;
using ::tensorflow::Tensor;
using ::tensorflow::TensorShape;
using ::tensorflow::tstring;
using ::tensorflow::shape_inference::DimensionHandle;
using ::tensorflow::shape_inference::InferenceContext;
using ::tensorflow::shape_inference::ShapeHandle;
namespace errors = ::tensorflow::errors;

Status CodecStatus(int code, const char* err) {
  switch (code) {
    case BPG_OK:
      return Status();
    case BPG_E_NOMEM:
      return errors::ResourceExhausted(err);
    case BPG_E_CODEC:
      return errors::Internal(err);
    default:  // BPG_E_ARG, BPG_E_FORMAT, BPG_E_UNSUPPORTED, BPG_E_LIMIT
      return errors::InvalidArgument(err);
  }
}

REGISTER_OP("BpgEncode")
    .Input("image: uint8")
    .Input("qp: int32")
    .Input("chroma_format: string")
    .Input("level: int32")
    .Input("lossless: bool")
    .Output("contents: string")
    .Attr("alpha_qp: int = -1")
    .Attr("bit_depth: int = 8")
    .Attr("color_space: {'ycbcr', 'rgb', 'ycgco', 'bt709', 'bt2020'} = 'ycbcr'")
    .Attr("limited_range: bool = false")
    .Attr("mpeg2_chroma_siting: bool = false")
    .Attr("hash: bool = false")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle unused;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 3, &unused));
      for (int i = 1; i < 5; ++i) TF_RETURN_IF_ERROR(c->WithRank(c->input(i), 0, &unused));
      c->set_output(0, c->Scalar());
      return Status();
    })
    .Doc(R"doc(
Encodes a uint8 image [H, W, C] (C = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) into
the bytes of a BPG file, as bpgenc does: qp 0..51 (lower is better),
chroma_format "420", "422" or "444", level 1..9 (bpgenc -m, x265 preset),
lossless (RGB colour space, 4:4:4, bit-exact).  Alpha is coded as a BPG alpha
plane.  The attrs expose further bpgenc options (bit depth 8/10/12, colour
space, limited range, MPEG2 chroma siting, MD5 hash SEI).
)doc");

REGISTER_OP("BpgDecode")
    .Input("contents: string")
    .Output("image: uint8")
    .Attr("channels: int = 3")
    .SetShapeFn([](InferenceContext* c) {
      ShapeHandle unused;
      TF_RETURN_IF_ERROR(c->WithRank(c->input(0), 0, &unused));
      int channels;
      TF_RETURN_IF_ERROR(c->GetAttr("channels", &channels));
      if (channels < 0 || channels > 4)
        return errors::InvalidArgument("BpgDecode: channels must be 0..4, got ", channels);
      DimensionHandle cdim = channels == 0 ? c->UnknownDim() : c->MakeDim(channels);
      c->set_output(0, c->MakeShape({c->UnknownDim(), c->UnknownDim(), cdim}));
      return Status();
    })
    .Doc(R"doc(
Decodes the first picture of a BPG file into uint8 [H, W, channels]:
channels 3 = RGB (default; gray replicated, alpha dropped), 4 = RGBA,
1 / 2 = gray / gray+alpha (grayscale files only), 0 = the file's own layout
(1 or 3, plus 1 with an alpha plane).  Conversion as bpgdec.
)doc");

class BpgEncodeOp : public OpKernel {
 public:
  explicit BpgEncodeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("alpha_qp", &alpha_qp_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("bit_depth", &bit_depth_));
    std::string cs;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("color_space", &cs));
    color_space_ = cs == "rgb"      ? BPG_CS_RGB
                   : cs == "ycgco"  ? BPG_CS_YCGCO
                   : cs == "bt709"  ? BPG_CS_BT709
                   : cs == "bt2020" ? BPG_CS_BT2020
                                    : BPG_CS_YCBCR;
    OP_REQUIRES_OK(ctx, ctx->GetAttr("limited_range", &limited_range_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("mpeg2_chroma_siting", &mpeg2_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("hash", &hash_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& image = ctx->input(0);
    OP_REQUIRES(ctx, image.dims() == 3,
                errors::InvalidArgument("BpgEncode: image must be [H, W, C], got shape ",
                                        image.shape().DebugString()));
    for (int i = 1; i < 5; ++i) {
      OP_REQUIRES(ctx, ctx->input(i).dims() == 0,
                  errors::InvalidArgument("BpgEncode: input ", i, " must be a scalar, got shape ",
                                          ctx->input(i).shape().DebugString()));
    }
    const int64_t h = image.dim_size(0), w = image.dim_size(1), c = image.dim_size(2);
    OP_REQUIRES(ctx, c >= 1 && c <= 4,
                errors::InvalidArgument("BpgEncode: image must have 1, 2, 3 or 4 channels, got ",
                                        c));
    OP_REQUIRES(ctx, h >= 1 && w >= 1,
                errors::InvalidArgument("BpgEncode: image is empty: shape ",
                                        image.shape().DebugString()));
    OP_REQUIRES(ctx, h <= BPG_MAX_SIDE && w <= BPG_MAX_SIDE,
                errors::InvalidArgument("BpgEncode: image ", w, "x", h,
                                        " exceeds the BPG limit of ", BPG_MAX_SIDE,
                                        " pixels per side"));
    const std::string chroma(ctx->input(2).scalar<tstring>()());
    bpg_encode_params p;
    bpg_encode_params_init(&p);
    if (chroma == "420") {
      p.chroma = 420;
    } else if (chroma == "422") {
      p.chroma = 422;
    } else if (chroma == "444") {
      p.chroma = 444;
    } else {
      ctx->SetStatus(errors::InvalidArgument(
          "BpgEncode: chroma_format must be \"420\", \"422\" or \"444\", got \"", chroma, "\""));
      return;
    }
    p.qp = ctx->input(1).scalar<int32_t>()();
    p.level = ctx->input(3).scalar<int32_t>()();
    p.lossless = ctx->input(4).scalar<bool>()() ? 1 : 0;
    p.alpha_qp = static_cast<int>(alpha_qp_);
    p.bit_depth = static_cast<int>(bit_depth_);
    p.color_space = color_space_;
    p.limited_range = limited_range_ ? 1 : 0;
    p.mpeg2_siting = mpeg2_ ? 1 : 0;
    p.hash = hash_ ? 1 : 0;

    uint8_t* out = nullptr;
    size_t out_len = 0;
    char err[BPG_ERR_SIZE] = {0};
    const int ret = bpg_encode(image.flat<uint8_t>().data(), static_cast<uint32_t>(w),
                               static_cast<uint32_t>(h), static_cast<int>(c),
                               static_cast<size_t>(w * c), &p, &out, &out_len, err);
    OP_REQUIRES_OK(ctx, CodecStatus(ret, err));
    Tensor* output = nullptr;
    Status s = ctx->allocate_output(0, TensorShape({}), &output);
    if (s.ok()) output->scalar<tstring>()().assign(reinterpret_cast<const char*>(out), out_len);
    bpg_free(out);
    OP_REQUIRES_OK(ctx, s);
  }

 private:
  int64_t alpha_qp_ = -1;
  int64_t bit_depth_ = 8;
  int color_space_ = BPG_CS_YCBCR;
  bool limited_range_ = false;
  bool mpeg2_ = false;
  bool hash_ = false;
};

class BpgDecodeOp : public OpKernel {
 public:
  explicit BpgDecodeOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("channels", &channels_));
    OP_REQUIRES(ctx, channels_ >= 0 && channels_ <= 4,
                errors::InvalidArgument("BpgDecode: channels must be 0..4, got ", channels_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& contents = ctx->input(0);
    OP_REQUIRES(ctx, contents.dims() == 0,
                errors::InvalidArgument("BpgDecode: contents must be a scalar, got shape ",
                                        contents.shape().DebugString()));
    const tstring& data = contents.scalar<tstring>()();
    const uint8_t* bytes = reinterpret_cast<const uint8_t*>(data.data());
    char err[BPG_ERR_SIZE] = {0};
    bpg_info info;
    OP_REQUIRES_OK(ctx, CodecStatus(bpg_parse_header(bytes, data.size(), 0, &info, err), err));
    int channels = static_cast<int>(channels_);
    if (channels == 0) channels = bpg_native_channels(&info);
    OP_REQUIRES(ctx, channels >= 3 || info.pixel_format == BPG_PF_GRAY,
                errors::InvalidArgument("BpgDecode: channels=", channels,
                                        " is only available for grayscale BPG files"));
    Tensor* output = nullptr;
    OP_REQUIRES_OK(ctx, ctx->allocate_output(
                            0,
                            TensorShape({static_cast<int64_t>(info.height),
                                         static_cast<int64_t>(info.width), channels}),
                            &output));
    const int ret = bpg_decode(bytes, data.size(), channels, output->flat<uint8_t>().data(),
                               static_cast<size_t>(output->NumElements()), 0, nullptr, err);
    OP_REQUIRES_OK(ctx, CodecStatus(ret, err));
  }

 private:
  int64_t channels_ = 3;
};

REGISTER_KERNEL_BUILDER(Name("BpgEncode").Device(DEVICE_CPU), BpgEncodeOp);
REGISTER_KERNEL_BUILDER(Name("BpgDecode").Device(DEVICE_CPU), BpgDecodeOp);

}  // namespace
}  // namespace tfcomp
