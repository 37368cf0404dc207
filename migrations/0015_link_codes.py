from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('settlement', '0014_mp_sessions')]

    initial = False

    operations = [
        ops.AddField(
            model_name='OwnerInvitation',
            name='linked_from',
            field=fields.ForeignKeyField('settlement.WechatIdentity', source_field='linked_from_id', null=True, description="a link code: the owner's bound WeChat user in the other app who made it", db_constraint=True, to_field='id', related_name=False, on_delete=OnDelete.CASCADE),
        ),
    ]
